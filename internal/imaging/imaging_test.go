package imaging_test

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"testing"

	"golang.org/x/image/webp"

	"github.com/tandem-chat/tandem/internal/imaging"
	"github.com/tandem-chat/tandem/internal/imaging/imagetest"
)

// leaks reports what of the test metadata survived in data.
func leaks(data []byte) []string {
	var found []string
	if bytes.Contains(data, []byte(imagetest.Secret)) {
		found = append(found, "the secret marker")
	}
	if bytes.Contains(data, []byte("GPSLatitude")) {
		found = append(found, "XMP GPS")
	}
	// The latitude rationals as the EXIF block stores them.
	var lat []byte
	for _, v := range imagetest.Latitude {
		lat = binary.LittleEndian.AppendUint32(lat, v)
		lat = binary.LittleEndian.AppendUint32(lat, 1)
	}
	if bytes.Contains(data, lat) {
		found = append(found, "EXIF GPS latitude")
	}
	return found
}

// redCorner says where the red quarter of imagetest.Pattern is shown:
// "top-left", "top-right", "bottom-left" or "bottom-right".
func redCorner(t *testing.T, img image.Image) string {
	t.Helper()
	b := img.Bounds()
	red := func(x, y int) bool {
		r, g, bl, _ := img.At(x, y).RGBA()
		return r > 0xC000 && g < 0x4000 && bl < 0x4000
	}
	qx, qy := b.Dx()/4, b.Dy()/4
	switch {
	case red(b.Min.X+qx, b.Min.Y+qy):
		return "top-left"
	case red(b.Max.X-qx, b.Min.Y+qy):
		return "top-right"
	case red(b.Min.X+qx, b.Max.Y-qy):
		return "bottom-left"
	case red(b.Max.X-qx, b.Max.Y-qy):
		return "bottom-right"
	}
	t.Fatalf("no red corner in the image")
	return ""
}

func TestStripJPEG(t *testing.T) {
	src := imagetest.JPEG(imagetest.Pattern(64, 32), 6)
	if len(leaks(src)) != 3 {
		t.Fatalf("the test photo should carry all three kinds of metadata, has %v", leaks(src))
	}
	if o := imaging.Orientation(src, imaging.JPEG); o != 6 {
		t.Fatalf("orientation of the test photo: %d, want 6", o)
	}
	out, err := imaging.Strip(src)
	if err != nil {
		t.Fatal(err)
	}
	if l := leaks(out); len(l) > 0 {
		t.Fatalf("metadata left after Strip: %v", l)
	}
	if bytes.Count(out, []byte{0xFF, 0xD8}) != 1 || !bytes.HasSuffix(out, []byte{0xFF, 0xD9}) {
		t.Errorf("the trailing image was not cut off")
	}
	// The pixels are untouched: the same image decodes.
	a, err := jpeg.Decode(bytes.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	b, err := jpeg.Decode(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("stripped JPEG does not decode: %v", err)
	}
	if a.Bounds() != b.Bounds() || a.At(10, 10) != b.At(10, 10) || a.At(50, 20) != b.At(50, 20) {
		t.Errorf("pixels changed")
	}
	// The orientation survives, alone.
	if o := imaging.Orientation(out, imaging.JPEG); o != 6 {
		t.Errorf("orientation after Strip: %d, want 6", o)
	}
	if w, h, _ := imaging.Size(out); w != 32 || h != 64 {
		t.Errorf("shown size %dx%d, want 32x64 (turned)", w, h)
	}
	// Stripping again changes nothing.
	again, err := imaging.Strip(out)
	if err != nil || !bytes.Equal(again, out) {
		t.Errorf("Strip is not idempotent (err %v)", err)
	}
}

func TestStripJPEGUpright(t *testing.T) {
	src := imagetest.JPEG(imagetest.Pattern(40, 40), 1)
	out, err := imaging.Strip(src)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(out, []byte("Exif\x00\x00")) {
		t.Errorf("an upright photo keeps an EXIF block")
	}
	if _, err := jpeg.Decode(bytes.NewReader(out)); err != nil {
		t.Fatal(err)
	}
}

func TestStripPNG(t *testing.T) {
	src := imagetest.PNG(imagetest.Pattern(30, 20), 3)
	out, err := imaging.Strip(src)
	if err != nil {
		t.Fatal(err)
	}
	if l := leaks(out); len(l) > 0 {
		t.Fatalf("metadata left after Strip: %v", l)
	}
	if _, err := png.Decode(bytes.NewReader(out)); err != nil {
		t.Fatalf("stripped PNG does not decode (a CRC is wrong?): %v", err)
	}
	if o := imaging.Orientation(out, imaging.PNG); o != 3 {
		t.Errorf("orientation after Strip: %d, want 3", o)
	}
}

func TestStripWebP(t *testing.T) {
	simple, err := os.ReadFile("testdata/gopher.webp")
	if err != nil {
		t.Fatal(err)
	}
	c, err := webp.DecodeConfig(bytes.NewReader(simple))
	if err != nil {
		t.Fatal(err)
	}
	src := imagetest.WebP(simple, c.Width, c.Height, 8)
	if _, err := webp.Decode(bytes.NewReader(src)); err != nil {
		t.Fatalf("the test WebP does not decode: %v", err)
	}
	out, err := imaging.Strip(src)
	if err != nil {
		t.Fatal(err)
	}
	if l := leaks(out); len(l) > 0 {
		t.Fatalf("metadata left after Strip: %v", l)
	}
	if _, err := webp.Decode(bytes.NewReader(out)); err != nil {
		t.Fatalf("stripped WebP does not decode: %v", err)
	}
	if o := imaging.Orientation(out, imaging.WebP); o != 8 {
		t.Errorf("orientation after Strip: %d, want 8", o)
	}
	if n := binary.LittleEndian.Uint32(out[4:8]); int(n) != len(out)-8 {
		t.Errorf("RIFF size %d, file holds %d", n, len(out)-8)
	}
}

func TestStripCorrupt(t *testing.T) {
	src := imagetest.JPEG(imagetest.Pattern(16, 16), 1)
	for _, bad := range [][]byte{src[:len(src)/3], append([]byte{0xFF, 0xD8, 0xFF, 0xE1, 0xFF, 0xFF}, 1, 2, 3)} {
		if _, err := imaging.Strip(bad); err == nil {
			t.Errorf("a broken JPEG (%d bytes) was accepted", len(bad))
		}
	}
	p := imagetest.PNG(imagetest.Pattern(8, 8), 1)
	if _, err := imaging.Strip(p[:40]); err == nil {
		t.Errorf("a truncated PNG was accepted")
	}
}

func TestPreview(t *testing.T) {
	for _, tc := range []struct {
		orientation int
		w, h        int    // shown size of the preview
		corner      string // where the red quarter is shown
	}{
		{1, 320, 160, "top-left"},
		{3, 320, 160, "bottom-right"},
		{6, 160, 320, "top-right"}, // turned 90° clockwise
		{8, 160, 320, "bottom-left"},
	} {
		src := imagetest.JPEG(imagetest.Pattern(1000, 500), tc.orientation)
		out, typ, w, h, err := imaging.Preview(src, 320)
		if err != nil {
			t.Fatal(err)
		}
		if typ != "image/jpeg" || w != tc.w || h != tc.h {
			t.Errorf("orientation %d: preview %s %dx%d, want image/jpeg %dx%d", tc.orientation, typ, w, h, tc.w, tc.h)
		}
		if l := leaks(out); len(l) > 0 {
			t.Errorf("preview carries %v", l)
		}
		img, err := jpeg.Decode(bytes.NewReader(out))
		if err != nil {
			t.Fatal(err)
		}
		if c := redCorner(t, img); c != tc.corner {
			t.Errorf("orientation %d: red quarter shown %s, want %s", tc.orientation, c, tc.corner)
		}
	}
}

func TestPreviewKeepsTransparency(t *testing.T) {
	img := image.NewNRGBA(image.Rect(0, 0, 600, 600))
	img.Set(5, 5, color.NRGBA{255, 0, 0, 255})
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	_, typ, w, h, err := imaging.Preview(b.Bytes(), 200)
	if err != nil {
		t.Fatal(err)
	}
	if typ != "image/png" || w != 200 || h != 200 {
		t.Errorf("preview %s %dx%d, want image/png 200x200", typ, w, h)
	}
}

func TestPreviewRefusesBombs(t *testing.T) {
	// A PNG header that claims 60,000 × 60,000 pixels.
	var b bytes.Buffer
	if err := png.Encode(&b, image.NewGray(image.Rect(0, 0, 1, 1))); err != nil {
		t.Fatal(err)
	}
	data := b.Bytes()
	binary.BigEndian.PutUint32(data[16:], 60000)
	binary.BigEndian.PutUint32(data[20:], 60000)
	if _, _, _, _, err := imaging.Preview(data, 100); err == nil {
		t.Fatal("a 3.6-gigapixel image was decoded")
	}
}

func FuzzStrip(f *testing.F) {
	f.Add(imagetest.JPEG(imagetest.Pattern(8, 8), 6))
	f.Add(imagetest.PNG(imagetest.Pattern(8, 8), 2))
	if simple, err := os.ReadFile("testdata/gopher.webp"); err == nil {
		f.Add(imagetest.WebP(simple, 8, 8, 5))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := imaging.Strip(data)
		if err != nil {
			return
		}
		// Whatever Strip accepts, it accepts again unchanged.
		again, err := imaging.Strip(out)
		if err != nil {
			t.Fatalf("Strip accepted %x but not its own output: %v", data, err)
		}
		if imaging.Format(out) != "" && !bytes.Equal(again, out) {
			t.Fatalf("Strip is not idempotent on %x", data)
		}
		_ = imaging.Orientation(out, imaging.Format(out))
	})
}
