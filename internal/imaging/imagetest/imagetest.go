// Package imagetest makes images for tests: photos with an EXIF block that
// records where they were taken (GPS) and how they are turned, the way a
// phone writes them.
package imagetest

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
)

// Secret is a marker written into every piece of metadata these images
// carry (the camera's name, the XMP packet, the comment): when it is found
// in a file, metadata survived.
const Secret = "TANDEM-SECRET-LOCATION"

// Latitude and Longitude are the GPS position written, as degrees, minutes
// and seconds.
var (
	Latitude  = [3]uint32{48, 51, 24}
	Longitude = [3]uint32{2, 21, 3}
)

// Pattern is a w×h picture whose top-left quarter is red and the rest
// blue, so a test can tell which way up it is shown.
func Pattern(w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := color.RGBA{0, 0, 255, 255}
			if x < w/2 && y < h/2 {
				c = color.RGBA{255, 0, 0, 255}
			}
			img.Set(x, y, c)
		}
	}
	return img
}

// Exif returns a little-endian TIFF block as cameras write it: IFD0 with
// the camera make (Secret) and the orientation, pointing to a GPS IFD with
// latitude N and longitude E.
func Exif(orientation int) []byte {
	le := binary.LittleEndian
	var b bytes.Buffer
	w16 := func(v uint16) { _ = binary.Write(&b, le, v) }
	w32 := func(v uint32) { _ = binary.Write(&b, le, v) }
	make_ := append([]byte(Secret), 0)
	// Layout: header (8), IFD0 with 3 entries (2+36+4 = 42) at 8, the make
	// string at 50, the GPS IFD with 4 entries (2+48+4 = 54) after it, then
	// the two rationals triplets (24 bytes each).
	makeOff := uint32(8 + 42)
	gpsOff := makeOff + uint32(len(make_))
	latOff := gpsOff + 54
	lonOff := latOff + 24
	b.WriteString("II*\x00")
	w32(8)
	w16(3)
	w16(0x010F) // Make
	w16(2)      // ASCII
	w32(uint32(len(make_)))
	w32(makeOff)
	w16(0x0112) // Orientation
	w16(3)      // SHORT
	w32(1)
	w16(uint16(orientation))
	w16(0)
	w16(0x8825) // GPS IFD pointer
	w16(4)      // LONG
	w32(1)
	w32(gpsOff)
	w32(0) // no next IFD
	b.Write(make_)
	w16(4)
	w16(0x0001) // GPSLatitudeRef
	w16(2)
	w32(2)
	b.WriteString("N\x00\x00\x00")
	w16(0x0002) // GPSLatitude
	w16(5)      // RATIONAL
	w32(3)
	w32(latOff)
	w16(0x0003) // GPSLongitudeRef
	w16(2)
	w32(2)
	b.WriteString("E\x00\x00\x00")
	w16(0x0004) // GPSLongitude
	w16(5)
	w32(3)
	w32(lonOff)
	w32(0)
	for _, v := range Latitude {
		w32(v)
		w32(1)
	}
	for _, v := range Longitude {
		w32(v)
		w32(1)
	}
	return b.Bytes()
}

// XMP is an XMP packet with a GPS position and Secret.
const XMP = `<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">` +
	`<rdf:Description xmlns:exif="http://ns.adobe.com/exif/1.0/" exif:GPSLatitude="48,51.4N" exif:GPSLongitude="2,21.05E" exif:Model="` +
	Secret + `"/></rdf:RDF></x:xmpmeta>`

func segment(marker byte, body []byte) []byte {
	out := []byte{0xFF, marker, byte((len(body) + 2) >> 8), byte(len(body) + 2)}
	return append(out, body...)
}

// JPEG returns img as a JPEG with an EXIF segment (GPS, Secret, the given
// orientation), an XMP segment, a comment and, after the image, a second
// JPEG with the same EXIF (as MPO files and motion photos carry).
func JPEG(img image.Image, orientation int) []byte {
	var plain bytes.Buffer
	if err := jpeg.Encode(&plain, img, &jpeg.Options{Quality: 90}); err != nil {
		panic(err)
	}
	p := plain.Bytes()
	var out bytes.Buffer
	out.Write(p[:2]) // SOI
	out.Write(segment(0xE1, append([]byte("Exif\x00\x00"), Exif(orientation)...)))
	out.Write(segment(0xE1, append([]byte("http://ns.adobe.com/xap/1.0/\x00"), XMP...)))
	out.Write(segment(0xFE, []byte("comment: "+Secret)))
	out.Write(p[2:])
	// A trailing image, with its own EXIF.
	out.Write(p[:2])
	out.Write(segment(0xE1, append([]byte("Exif\x00\x00"), Exif(orientation)...)))
	out.Write(p[2:])
	return out.Bytes()
}

func pngChunk(typ string, body []byte) []byte {
	out := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
	out = append(out, typ...)
	out = append(out, body...)
	return binary.BigEndian.AppendUint32(out, crc32.ChecksumIEEE(out[4:]))
}

// PNG returns img as a PNG with an eXIf chunk (GPS, Secret, the given
// orientation) and an iTXt chunk holding XMP, before the image data.
func PNG(img image.Image, orientation int) []byte {
	var plain bytes.Buffer
	if err := png.Encode(&plain, img); err != nil {
		panic(err)
	}
	p := plain.Bytes()
	idat := bytes.Index(p, []byte("IDAT")) - 4
	var out bytes.Buffer
	out.Write(p[:idat])
	out.Write(pngChunk("eXIf", Exif(orientation)))
	out.Write(pngChunk("iTXt", []byte("XML:com.adobe.xmp\x00\x00\x00\x00\x00"+XMP)))
	out.Write(pngChunk("tEXt", []byte("Comment\x00"+Secret)))
	out.Write(p[idat:])
	return out.Bytes()
}

// WebP wraps a simple (VP8 or VP8L) WebP file in the extended format with
// EXIF (GPS, Secret, the given orientation) and XMP chunks. width and
// height are the image's size, which the VP8X chunk repeats.
func WebP(simple []byte, width, height, orientation int) []byte {
	if len(simple) < 20 || string(simple[:4]) != "RIFF" || string(simple[8:12]) != "WEBP" {
		panic("imagetest: not a simple WebP file")
	}
	chunk := func(fourCC string, body []byte) []byte {
		out := append([]byte(fourCC), binary.LittleEndian.AppendUint32(nil, uint32(len(body)))...)
		out = append(out, body...)
		if len(body)%2 == 1 {
			out = append(out, 0)
		}
		return out
	}
	vp8x := make([]byte, 10)
	vp8x[0] = 0x08 | 0x04 // EXIF and XMP
	put24 := func(b []byte, v int) { b[0], b[1], b[2] = byte(v), byte(v>>8), byte(v>>16) }
	put24(vp8x[4:], width-1)
	put24(vp8x[7:], height-1)
	var body []byte
	body = append(body, "WEBP"...)
	body = append(body, chunk("VP8X", vp8x)...)
	body = append(body, simple[12:]...) // the image chunk
	body = append(body, chunk("EXIF", Exif(orientation))...)
	body = append(body, chunk("XMP ", []byte(XMP))...)
	out := append([]byte("RIFF"), binary.LittleEndian.AppendUint32(nil, uint32(len(body)))...)
	return append(out, body...)
}
