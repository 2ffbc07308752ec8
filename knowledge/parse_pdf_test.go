package knowledge_test

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/tandem-chat/tandem/internal/errs"
	"github.com/tandem-chat/tandem/knowledge"
)

type pdfCase struct {
	name      string
	data      []byte
	wantTitle string
	want      []c
}

// pdfCases are readable PDFs and what they hold.
func pdfCases() []pdfCase {
	cjk := pdfDoc{cjk: []rune("可以退货吗？三十天内。")}
	cjk.title = "退货"
	cjk.pages = []pdfPage{{content: "BT /F2 12 Tf 72 740 Td " + cjk.cjkHex("可以退货吗？") + " Tj 0 -14 Td " + cjk.cjkHex("可以，三十天内。") + " Tj ET"}}
	// The CJK font has no "，"; the code for it is skipped, which is what a
	// reader of a font without that glyph would see too.

	return []pdfCase{
		{
			name: "LinesAndParagraphs",
			data: buildPDF("Shipping FAQ", pdfLines(
				"Orders ship within two days. We use",
				"tracked couriers for every par-",
				"cel.",
				"",
				"Q: Do you ship abroad?",
				"A: Yes, to 40 countries.",
			)),
			wantTitle: "Shipping FAQ",
			want: []c{
				{text: "Orders ship within two days. We use tracked couriers for every parcel."},
				{question: "Do you ship abroad?", text: "Yes, to 40 countries."},
			},
		},
		{
			name: "Pages",
			data: buildPDF("", pdfLines("Page one text."), pdfLines("Page two text.")),
			want: []c{{text: "Page one text.\n\nPage two text."}},
		},
		{
			name: "KerningAndWordGaps",
			// TJ numbers below about -150 thousandths of an em are word
			// gaps; small ones are kerning inside a word.
			data: buildPDF("", "BT /F1 12 Tf 72 700 Td [(Ker)-20(ned te)-30(xt)-300(next)] TJ ET"),
			want: []c{{text: "Kerned text next"}},
		},
		{
			name: "TextMatrixAndLeading",
			data: buildPDF("", "BT /F1 10 Tf 14 TL 1 0 0 1 72 700 Tm (First line) Tj T* (second line) Tj (third line) ' ET"),
			want: []c{{text: "First line second line third line"}},
		},
		{
			name: "Compressed",
			data: pdfDoc{compress: true, pages: []pdfPage{{content: pdfLines("Deflated text survives.")}}}.bytes(),
			want: []c{{text: "Deflated text survives."}},
		},
		{
			name: "FormXObject",
			data: pdfDoc{pages: []pdfPage{{
				content: "q 1 0 0 1 0 0 cm /Fm1 Do Q",
				forms:   map[string]string{"Fm1": pdfLines("Text inside a form.")},
			}}}.bytes(),
			want: []c{{text: "Text inside a form."}},
		},
		{
			name:      "ChineseThroughToUnicode",
			data:      cjk.bytes(),
			wantTitle: "退货",
			want:      []c{{text: "可以退货吗？可以三十天内。"}},
		},
		{
			name:      "UTF16Title",
			data:      pdfDoc{title: "<FEFF00430061006600E9>", pages: []pdfPage{{content: pdfLines("Menu.")}}}.bytes(),
			wantTitle: "Café",
			want:      []c{{text: "Menu."}},
		},
		{
			name: "PDF20Header",
			data: pdfDoc{header: "%PDF-2.0", pages: []pdfPage{{content: pdfLines("Version two.")}}}.bytes(),
			want: []c{{text: "Version two."}},
		},
	}
}

func TestParsePDF(t *testing.T) {
	for _, tt := range pdfCases() {
		t.Run(tt.name, func(t *testing.T) {
			p := mustParse(t, knowledge.PDF, string(tt.data), knowledge.ChunkOptions{})
			if p.Title != tt.wantTitle {
				t.Errorf("title = %q, want %q", p.Title, tt.wantTitle)
			}
			if got := chunksOf(p); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("chunks:\n got %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

func TestParsePDFLong(t *testing.T) {
	var lines []string
	for range 120 {
		lines = append(lines, "Every line of this page is part of one long paragraph.")
	}
	// Spread the lines over pages 14 points apart, 50 to a page.
	var pages []string
	for i := 0; i < len(lines); i += 50 {
		pages = append(pages, pdfLines(lines[i:min(i+50, len(lines))]...))
	}
	p := mustParse(t, knowledge.PDF, string(buildPDF("Long", pages...)), knowledge.ChunkOptions{MaxRunes: 500, OverlapRunes: 80})
	if len(p.Chunks) < 10 {
		t.Errorf("got %d chunks, want the text split", len(p.Chunks))
	}
}

type pdfErrorCase struct {
	name string
	data []byte
	code errs.Code
	msg  string
}

// pdfErrorCases are damaged and unreadable PDFs.
func pdfErrorCases() []pdfErrorCase {
	good := buildPDF("T", pdfLines("Hello."))
	truncated := good[:len(good)/2]
	noXref := bytes.Replace(good, []byte("startxref"), []byte("startxxxx"), 1)
	garbled := append([]byte("%PDF-1.4\n"), bytes.Repeat([]byte("\x00\xff garbage obj << >> ["), 200)...)
	garbled = append(garbled, "\nstartxref\n10\n%%EOF\n"...)
	badStream := buildPDF("T", "BT /F1 12 Tf 72 700 Td (unclosed Tj ET ] >> Q Q Q")
	// A page tree that contains itself must end, not loop.
	loop := bytes.Replace(buildPDF("", pdfLines("x")), []byte("/Kids [10 0 R]"), []byte("/Kids [2 0 R 2 0 R]"), 1)
	encrypted := bytes.Replace(good, []byte("/Root 1 0 R"), []byte("/Root 1 0 R /Encrypt << /Filter /Secret /V 9 >> /ID [<01> <01>]"), 1)

	return []pdfErrorCase{
		{"NotAPDF", []byte("hello, I am text"), errs.Invalid, "damaged or not a PDF"},
		{"HeaderOnly", []byte("%PDF-1.7\n"), errs.Invalid, "damaged or not a PDF"},
		{"Truncated", truncated, errs.Invalid, "damaged or not a PDF"},
		{"NoStartXref", noXref, errs.Invalid, "damaged or not a PDF"},
		{"Garbage", garbled, errs.Invalid, "damaged or not a PDF"},
		{"PageTreeLoop", loop, errs.Invalid, ""},
		{"Encrypted", encrypted, errs.Invalid, "password-protected"},
		{"NoTextLayer", buildPDF("Scan", "q 612 0 0 792 0 0 cm 0 0 1 1 re f Q"), errs.Invalid, "no text layer"},
		{"NoPages", buildPDF("Empty"), errs.Invalid, ""},
		{"BrokenContentHasNoText", badStream, errs.Invalid, ""},
	}
}

func TestParsePDFErrors(t *testing.T) {
	for _, tt := range pdfErrorCases() {
		t.Run(tt.name, func(t *testing.T) {
			p, err := knowledge.Parse(knowledge.PDF, tt.data)
			if err == nil {
				t.Fatalf("no error; got %#v", chunksOf(p))
			}
			if got := errs.CodeOf(err); got != tt.code {
				t.Fatalf("code = %q (%v), want %q", got, err, tt.code)
			}
			if !strings.Contains(errs.MessageOf(err), tt.msg) {
				t.Errorf("message %q does not contain %q", errs.MessageOf(err), tt.msg)
			}
		})
	}
}
