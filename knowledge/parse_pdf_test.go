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
			name: "ChineseRunsOnOneLine",
			// Each character drawn on its own, as many CJK writers do; no
			// spaces come between them.
			data: pdfDoc{cjk: []rune("你好世界"), pages: []pdfPage{{content: "BT /F2 12 Tf 72 700 Td <0001> Tj <0002> Tj 30 0 Td <0003> Tj <0004> Tj ET"}}}.bytes(),
			want: []c{{text: "你好世界"}},
		},
		{
			name:      "ObjectStreamsAndXrefStream",
			data:      objStmPDF("(Modern title)"),
			wantTitle: "Modern title",
			want:      []c{{text: "Stored in a modern file."}},
		},
		{
			name: "FormEndingInHexStringIsSkipped",
			// The library would loop forever on the form's unterminated
			// hex string.
			data: pdfDoc{pages: []pdfPage{{
				content: pdfLines("Kept.") + " /Fm1 Do",
				forms:   map[string]string{"Fm1": "BT /F1 12 Tf 72 600 Td (lost) Tj ET <41"},
			}}}.bytes(),
			want: []c{{text: "Kept."}},
		},
		{
			name: "UnsafeToUnicodeDropsItsText",
			data: pdfDoc{cjk: []rune("你"), cmapTail: "\n<00", pages: []pdfPage{{
				content: pdfLines("Latin kept.") + "BT /F2 12 Tf 72 600 Td <0001> Tj ET",
			}}}.bytes(),
			want: []c{{text: "Latin kept."}},
		},
		{
			name: "HugeCMapBlockDropsItsText",
			data: pdfDoc{cjk: []rune("你"), cmapTail: "\n99999999999 beginbfchar endbfchar", pages: []pdfPage{{
				content: pdfLines("Latin kept.") + "BT /F2 12 Tf 72 600 Td <0001> Tj ET",
			}}}.bytes(),
			want: []c{{text: "Latin kept."}},
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

	// Declaring object 3,000,000,000 made the library allocate 96 GB.
	hugeXref := bytes.Replace(good, []byte("xref\n0 "), []byte("xref\n3000000000 1\n0000000000 65535 f \n0 "), 1)
	hugeXrefStream := bytes.Replace(objStmPDF("(t)"), []byte("/Size 10 "), []byte("/Size 9999999999 "), 1)
	wideXrefStream := bytes.Replace(objStmPDF("(t)"), []byte("/W [1 4 2]"), []byte("/W [1 4 2000000000]"), 1)

	return []pdfErrorCase{
		{"ContentEndsInHexString", buildPDF("T", "BT /F1 12 Tf 72 700 Td (x) Tj ET <4142"), errs.Invalid, "damaged"},
		{"ObjectStreamEndsInHexString", objStmPDF("<414243"), errs.Invalid, "damaged"},
		{"HugeObjectNumber", hugeXref, errs.Invalid, "damaged"},
		{"HugeXrefStreamSize", hugeXrefStream, errs.Invalid, "damaged"},
		{"WideXrefStreamFields", wideXrefStream, errs.Invalid, "damaged"},
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
