package knowledge_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tandem-chat/tandem/internal/errs"
	"github.com/tandem-chat/tandem/knowledge"
)

// The fuzz tests feed each parser arbitrary bytes and chunk sizes. Whatever
// comes in, Parse must not panic, and must either return a user-facing
// error or chunks that hold the invariants of checkParsed.

var allFormats = []knowledge.Format{
	knowledge.Markdown, knowledge.Text, knowledge.HTML, knowledge.PDF, knowledge.CSV, knowledge.JSON,
}

// seeds are the inputs of the table tests, by format.
func seeds() map[knowledge.Format][][]byte {
	s := map[knowledge.Format][][]byte{}
	add := func(f knowledge.Format, in string) { s[f] = append(s[f], []byte(in)) }
	for _, tt := range markdownTests {
		add(knowledge.Markdown, tt.in)
	}
	add(knowledge.Markdown, longMarkdown())
	for _, tt := range textTests {
		add(knowledge.Text, tt.in)
	}
	for _, tt := range htmlTests {
		add(knowledge.HTML, tt.in)
	}
	for _, tt := range pdfCases() {
		add(knowledge.PDF, string(tt.data))
	}
	for _, tt := range pdfErrorCases() {
		add(knowledge.PDF, string(tt.data))
	}
	for _, tt := range csvTests {
		add(knowledge.CSV, tt.in)
	}
	for _, tt := range jsonTests {
		add(knowledge.JSON, tt.in)
	}
	for _, tt := range faqErrorTests {
		add(tt.format, tt.in)
	}
	for _, tt := range errorTests {
		if tt.format != "docx" {
			add(tt.format, tt.in)
		}
	}
	return s
}

// ownPanics collects panics the parsers recovered from that arose in our
// own code: a bug, even though the upload only fails.
var ownPanics struct {
	sync.Mutex
	list []string
}

func init() {
	knowledge.SetPanicHook(func(r any, stack string) {
		ownPanics.Lock()
		ownPanics.list = append(ownPanics.list, fmt.Sprintf("%v\n%s", r, stack))
		ownPanics.Unlock()
	})
}

// checkFuzz runs one input and fails on anything but a clean result or a
// user-facing error, or on a panic in our code even when it was recovered.
func checkFuzz(t *testing.T, f knowledge.Format, data []byte, maxRunes, overlap int16) {
	defer func() {
		ownPanics.Lock()
		list := ownPanics.list
		ownPanics.list = nil
		ownPanics.Unlock()
		if len(list) > 0 {
			t.Fatalf("%s: the parser panicked in our code: %s", f, list[0])
		}
	}()
	opt := knowledge.ChunkOptions{MaxRunes: int(maxRunes), OverlapRunes: int(overlap)}
	// A hang is a failure too; the fuzzer would only stall on one.
	var (
		p    *knowledge.Parsed
		err  error
		done = make(chan struct{})
	)
	go func() {
		defer close(done)
		p, err = knowledge.ParseWith(f, data, opt)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: parsing %d bytes took over 10s", f, len(data))
	}
	if err != nil {
		var e *errs.Error
		if !errors.As(err, &e) || e.Message == "" {
			t.Fatalf("%s: error without a user message: %v", f, err)
		}
		switch e.Code {
		case errs.Invalid, errs.TooLarge:
		default:
			t.Fatalf("%s: unexpected code %q: %v", f, e.Code, err)
		}
		return
	}
	if opt.MaxRunes <= 0 {
		opt.MaxRunes = knowledge.DefaultMaxRunes
	}
	if msg := checkParsed(p, opt); msg != "" {
		t.Fatalf("%s: %s", f, msg)
	}
}

func fuzzFormat(f *testing.F, format knowledge.Format) {
	for _, in := range seeds()[format] {
		f.Add(in, int16(0), int16(0))
		f.Add(in, int16(60), int16(20))
	}
	f.Fuzz(func(t *testing.T, data []byte, maxRunes, overlap int16) {
		checkFuzz(t, format, data, maxRunes, overlap)
	})
}

// FuzzParse fuzzes every parser through one entry point, the format being
// part of the input.
func FuzzParse(f *testing.F) {
	for i, format := range allFormats {
		for _, in := range seeds()[format] {
			f.Add(uint8(i), in, int16(0), int16(0))
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, data []byte, maxRunes, overlap int16) {
		checkFuzz(t, allFormats[int(which)%len(allFormats)], data, maxRunes, overlap)
	})
}

func FuzzParseMarkdown(f *testing.F) { fuzzFormat(f, knowledge.Markdown) }
func FuzzParseText(f *testing.F)     { fuzzFormat(f, knowledge.Text) }
func FuzzParseHTML(f *testing.F)     { fuzzFormat(f, knowledge.HTML) }
func FuzzParsePDF(f *testing.F)      { fuzzFormat(f, knowledge.PDF) }
func FuzzParseCSV(f *testing.F)      { fuzzFormat(f, knowledge.CSV) }
func FuzzParseJSON(f *testing.F)     { fuzzFormat(f, knowledge.JSON) }

func FuzzDetectFormat(f *testing.F) {
	f.Add("faq.md", "text/markdown", []byte("# Hi"))
	f.Add("", "", []byte("%PDF-1.4"))
	f.Add("x", "text/html; charset=utf-8", []byte("<!doctype html>"))
	f.Fuzz(func(t *testing.T, name, contentType string, data []byte) {
		format, err := knowledge.DetectFormat(name, contentType, data)
		if err != nil {
			if errs.CodeOf(err) != errs.Unsupported {
				t.Fatalf("code %q: %v", errs.CodeOf(err), err)
			}
			return
		}
		found := false
		for _, f := range allFormats {
			found = found || f == format
		}
		if !found {
			t.Fatalf("unknown format %q", format)
		}
	})
}

// FuzzPDFContent fuzzes the drawing operators inside a valid PDF, which
// byte-level fuzzing of whole files seldom reaches.
func FuzzPDFContent(f *testing.F) {
	f.Add(pdfLines("Hello there.", "", "Second paragraph."), "")
	f.Add("BT /F1 12 Tf 72 700 Td [(Ker)-20(ned)-300(x)] TJ ET", "")
	f.Add("BT /F1 10 Tf 14 TL 1 0 0 1 72 700 Tm (a) Tj T* (b) ' 1 2 (c) \" ET", "")
	f.Add("q 1 0 0 1 0 0 cm /Fm1 Do Q", pdfLines("In a form."))
	f.Add("q 2 0 0 2 0 0 cm /Fm1 Do /Fm1 Do Q Q Q", "/Fm1 Do BT /F2 9 Tf <0001> Tj ET")
	f.Fuzz(func(t *testing.T, content, form string) {
		doc := pdfDoc{cjk: []rune("你好"), pages: []pdfPage{{content: content, forms: map[string]string{"Fm1": form}}}}
		checkFuzz(t, knowledge.PDF, doc.bytes(), 0, 0)
	})
}

// FuzzPDFCMap fuzzes a font's ToUnicode character map, which the library
// reads with the same lexer as content streams.
func FuzzPDFCMap(f *testing.F) {
	f.Add("", "BT /F2 12 Tf 72 700 Td <00010002> Tj ET")
	f.Add("\n1 beginbfrange <0001> <0002> <4F60> endbfrange", "BT /F2 12 Tf 72 700 Td <0001> Tj ET")
	f.Add("\n2 beginbfrange <0001> <0002> [<4F60> <597D>] endbfrange", "BT /F2 12 Tf 72 700 Td <00010002> Tj ET")
	f.Add("\n<00", "BT /F2 12 Tf 72 700 Td <0001> Tj ET")
	f.Fuzz(func(t *testing.T, cmapTail, content string) {
		doc := pdfDoc{cjk: []rune("你好"), cmapTail: cmapTail, pages: []pdfPage{{content: content}}}
		checkFuzz(t, knowledge.PDF, doc.bytes(), 0, 0)
	})
}
