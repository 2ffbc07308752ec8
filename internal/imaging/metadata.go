package imaging

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Strip returns data without its metadata: for JPEG the EXIF and XMP
// segments (APP1), Photoshop/IPTC (APP13), comments, the other application
// segments but JFIF, ICC profiles and Adobe's colour transform, and
// anything after the end of the main image (the extra images an MPO or a
// phone's "motion photo" appends, each with its own EXIF); for PNG the
// eXIf and text chunks; for WebP the EXIF and XMP chunks. The pixels are
// not touched. When the photo had an EXIF orientation other than "up", a
// new EXIF block holding only that orientation takes the old one's place,
// so the photo is still shown the right way up. GIF and other data are
// returned as they are.
func Strip(data []byte) ([]byte, error) {
	switch Format(data) {
	case JPEG:
		return stripJPEG(data)
	case PNG:
		return stripPNG(data)
	case WebP:
		return stripWebP(data)
	}
	return data, nil
}

// Orientation returns the EXIF orientation (1 to 8) of a JPEG, PNG or WebP
// image, or 1 when it has none. f is the image's Format.
func Orientation(data []byte, f string) int {
	var tiff []byte
	switch f {
	case JPEG:
		tiff = jpegExif(data)
	case PNG:
		tiff = pngChunk(data, "eXIf")
	case WebP:
		tiff = webpChunk(data, "EXIF")
		// Some writers keep the JPEG APP1 prefix inside the chunk.
		tiff = bytes.TrimPrefix(tiff, []byte("Exif\x00\x00"))
	}
	return exifOrientation(tiff)
}

var errCorrupt = errors.New("imaging: corrupt image structure")

// ---- EXIF (TIFF) -------------------------------------------------------------

// exifOrientation reads tag 0x0112 of IFD0 from a TIFF-structured EXIF
// block; anything unreadable counts as 1 (up).
func exifOrientation(tiff []byte) int {
	if len(tiff) < 8 {
		return 1
	}
	var bo binary.ByteOrder
	switch string(tiff[:4]) {
	case "II*\x00":
		bo = binary.LittleEndian
	case "MM\x00*":
		bo = binary.BigEndian
	default:
		return 1
	}
	off := int(bo.Uint32(tiff[4:8]))
	if off < 8 || off+2 > len(tiff) {
		return 1
	}
	n := int(bo.Uint16(tiff[off:]))
	for i := 0; i < n; i++ {
		e := off + 2 + 12*i
		if e+12 > len(tiff) {
			return 1
		}
		if bo.Uint16(tiff[e:]) != 0x0112 {
			continue
		}
		var v int
		switch bo.Uint16(tiff[e+2:]) {
		case 3: // SHORT, left-justified in the value field
			v = int(bo.Uint16(tiff[e+8:]))
		case 4: // LONG, from writers that get the type wrong
			v = int(bo.Uint32(tiff[e+8:]))
		}
		if v >= 1 && v <= 8 {
			return v
		}
		return 1
	}
	return 1
}

// orientationExif is the smallest EXIF block that says only how the image
// is turned: a big-endian TIFF header and an IFD0 with one entry.
func orientationExif(o int) []byte {
	b := make([]byte, 0, 26)
	b = append(b, 'M', 'M', 0, 42, 0, 0, 0, 8) // header, IFD0 at 8
	b = append(b, 0, 1)                        // one entry
	b = append(b, 0x01, 0x12, 0, 3, 0, 0, 0, 1, byte(o>>8), byte(o), 0, 0)
	b = append(b, 0, 0, 0, 0) // no next IFD
	return b
}

// ---- JPEG --------------------------------------------------------------------

// jpegSegment is one marker segment before or between scans.
type jpegSegment struct {
	marker byte
	body   []byte // without marker and length
}

// keepJPEG says which segments outside the scans Strip keeps.
func keepJPEG(s jpegSegment) bool {
	switch {
	case s.marker == 0xE0: // APP0: JFIF (and JFXX thumbnails, harmless)
		return true
	case s.marker == 0xE2: // APP2: the ICC profile, not MPF (extra images)
		return bytes.HasPrefix(s.body, []byte("ICC_PROFILE\x00"))
	case s.marker == 0xEE: // APP14: Adobe colour transform, needed to decode CMYK
		return true
	case s.marker >= 0xE1 && s.marker <= 0xEF: // other APPn: EXIF, XMP, IPTC, …
		return false
	case s.marker == 0xFE: // comments
		return false
	}
	return true // tables, frame and scan headers
}

// jpegExif returns the TIFF block of a JPEG's first EXIF segment.
func jpegExif(data []byte) []byte {
	var tiff []byte
	_ = walkJPEG(data, func(s jpegSegment) {
		if tiff == nil && s.marker == 0xE1 && bytes.HasPrefix(s.body, []byte("Exif\x00\x00")) {
			tiff = s.body[6:]
		}
	}, nil)
	return tiff
}

// walkJPEG calls seg for every marker segment and scan for every scan's
// entropy-coded data (which follows the SOS segment passed to seg), up to
// the end of the main image. It returns errCorrupt for a broken structure.
func walkJPEG(data []byte, seg func(jpegSegment), scan func([]byte)) error {
	if len(data) < 4 || data[0] != 0xFF || data[1] != 0xD8 {
		return errCorrupt
	}
	i := 2
	for i < len(data) {
		if data[i] != 0xFF {
			return errCorrupt
		}
		for i < len(data) && data[i] == 0xFF { // fill bytes
			i++
		}
		if i >= len(data) {
			return errCorrupt
		}
		m := data[i]
		i++
		switch {
		case m == 0xD9: // EOI: what follows is not part of this image
			return nil
		case m >= 0xD0 && m <= 0xD7, m == 0x01:
			continue // markers without a length
		}
		if i+2 > len(data) {
			return errCorrupt
		}
		n := int(binary.BigEndian.Uint16(data[i:]))
		if n < 2 || i+n > len(data) {
			return errCorrupt
		}
		seg(jpegSegment{marker: m, body: data[i+2 : i+n]})
		i += n
		if m != 0xDA { // SOS: entropy-coded data follows
			continue
		}
		start := i
		for i < len(data) {
			if data[i] != 0xFF || i+1 >= len(data) {
				i++
				continue
			}
			next := data[i+1]
			if next == 0x00 || (next >= 0xD0 && next <= 0xD7) {
				i += 2 // a stuffed byte or a restart marker
				continue
			}
			if next == 0xFF {
				i++ // fill byte before a marker
				continue
			}
			break
		}
		if scan != nil {
			scan(data[start:i])
		}
	}
	return errCorrupt // no EOI
}

func stripJPEG(data []byte) ([]byte, error) {
	o := exifOrientation(jpegExif(data))
	out := make([]byte, 0, len(data))
	out = append(out, 0xFF, 0xD8)
	putSeg := func(m byte, body []byte) {
		out = append(out, 0xFF, m, byte((len(body)+2)>>8), byte(len(body)+2))
		out = append(out, body...)
	}
	wroteExif := o == 1
	err := walkJPEG(data, func(s jpegSegment) {
		if !wroteExif && s.marker != 0xE0 {
			// The orientation goes after JFIF's APP0, before anything else.
			putSeg(0xE1, append([]byte("Exif\x00\x00"), orientationExif(o)...))
			wroteExif = true
		}
		if keepJPEG(s) {
			putSeg(s.marker, s.body)
		}
	}, func(scan []byte) {
		out = append(out, scan...)
	})
	if err != nil {
		return nil, fmt.Errorf("imaging: JPEG: %w", err)
	}
	return append(out, 0xFF, 0xD9), nil
}

// ---- PNG ---------------------------------------------------------------------

const pngSig = "\x89PNG\r\n\x1a\n"

// walkPNG calls fn for each chunk, in order, until IEND.
func walkPNG(data []byte, fn func(typ string, body []byte)) error {
	if !bytes.HasPrefix(data, []byte(pngSig)) {
		return errCorrupt
	}
	i := len(pngSig)
	for i+12 <= len(data) {
		n := int(binary.BigEndian.Uint32(data[i:]))
		if n < 0 || i+12+n > len(data) {
			return errCorrupt
		}
		typ := string(data[i+4 : i+8])
		fn(typ, data[i+8:i+8+n])
		i += 12 + n
		if typ == "IEND" {
			return nil
		}
	}
	return errCorrupt
}

func pngChunk(data []byte, want string) []byte {
	var out []byte
	_ = walkPNG(data, func(typ string, body []byte) {
		if out == nil && typ == want {
			out = body
		}
	})
	return out
}

func appendPNGChunk(out []byte, typ string, body []byte) []byte {
	out = binary.BigEndian.AppendUint32(out, uint32(len(body)))
	start := len(out)
	out = append(out, typ...)
	out = append(out, body...)
	return binary.BigEndian.AppendUint32(out, crc32.ChecksumIEEE(out[start:]))
}

func stripPNG(data []byte) ([]byte, error) {
	o := exifOrientation(pngChunk(data, "eXIf"))
	out := make([]byte, 0, len(data))
	out = append(out, pngSig...)
	err := walkPNG(data, func(typ string, body []byte) {
		switch typ {
		case "eXIf", "tEXt", "zTXt", "iTXt": // EXIF, and XMP lives in iTXt
			return
		case "IDAT":
			if o != 1 {
				// eXIf must come before the image data.
				out = appendPNGChunk(out, "eXIf", orientationExif(o))
				o = 1
			}
		}
		out = appendPNGChunk(out, typ, body)
	})
	if err != nil {
		return nil, fmt.Errorf("imaging: PNG: %w", err)
	}
	return out, nil
}

// ---- WebP --------------------------------------------------------------------

// walkWebP calls fn for each chunk of the RIFF container.
func walkWebP(data []byte, fn func(fourCC string, body []byte)) error {
	if len(data) < 12 || string(data[:4]) != "RIFF" || string(data[8:12]) != "WEBP" {
		return errCorrupt
	}
	end := 8 + int(binary.LittleEndian.Uint32(data[4:8]))
	if end > len(data) || end < 12 {
		return errCorrupt
	}
	i := 12
	for i+8 <= end {
		n := int(binary.LittleEndian.Uint32(data[i+4:]))
		if n < 0 || i+8+n > end {
			return errCorrupt
		}
		fn(string(data[i:i+4]), data[i+8:i+8+n])
		i += 8 + n + n%2 // chunks are padded to an even size
	}
	return nil
}

func webpChunk(data []byte, want string) []byte {
	var out []byte
	_ = walkWebP(data, func(fourCC string, body []byte) {
		if out == nil && fourCC == want {
			out = body
		}
	})
	return out
}

func appendWebPChunk(out []byte, fourCC string, body []byte) []byte {
	out = append(out, fourCC...)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(body)))
	out = append(out, body...)
	if len(body)%2 == 1 {
		out = append(out, 0)
	}
	return out
}

// VP8X flags (the first byte of the VP8X chunk).
const (
	vp8xEXIF = 0x08
	vp8xXMP  = 0x04
)

func stripWebP(data []byte) ([]byte, error) {
	tiff := bytes.TrimPrefix(webpChunk(data, "EXIF"), []byte("Exif\x00\x00"))
	o := exifOrientation(tiff)
	extended := false
	out := make([]byte, 0, len(data))
	out = append(out, "RIFF\x00\x00\x00\x00WEBP"...)
	err := walkWebP(data, func(fourCC string, body []byte) {
		switch fourCC {
		case "EXIF", "XMP ":
			return
		case "VP8X":
			if len(body) >= 1 {
				body = append([]byte(nil), body...)
				body[0] &^= vp8xEXIF | vp8xXMP
				if o != 1 {
					body[0] |= vp8xEXIF
				}
				extended = true
			}
		}
		out = appendWebPChunk(out, fourCC, body)
	})
	if err != nil {
		return nil, fmt.Errorf("imaging: WebP: %w", err)
	}
	// Metadata chunks exist only in the extended format, which the VP8X
	// chunk announces; the orientation goes back at the end, as specified.
	if o != 1 && extended {
		out = appendWebPChunk(out, "EXIF", orientationExif(o))
	}
	binary.LittleEndian.PutUint32(out[4:8], uint32(len(out)-8))
	return out, nil
}
