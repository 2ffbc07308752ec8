package knowledge_test

import (
	"bytes"
	"compress/zlib"
	"fmt"
	"sort"
	"strings"
)

// Test PDFs are written here rather than committed, so each test shows the
// drawing operators it relies on. The files are small but valid: a catalog,
// a page tree, fonts, an information dictionary and a cross-reference table
// with exact offsets.

// pdfPage is one page: its content stream and any form XObjects it draws
// (by name, e.g. "Fm1").
type pdfPage struct {
	content string
	forms   map[string]string
}

// pdfDoc describes a test PDF.
type pdfDoc struct {
	title    string
	pages    []pdfPage
	compress bool   // FlateDecode the content streams
	cjk      []rune // characters of the F2 font, codes <0001>, <0002>, …
	header   string // "%PDF-1.4" unless set
	cmapTail string // appended to the F2 font's ToUnicode map
}

// cjkHex returns the F2 codes of s as a PDF hex string, for s written with
// the characters of doc.cjk.
func (d pdfDoc) cjkHex(s string) string {
	var sb strings.Builder
	sb.WriteByte('<')
	for _, r := range s {
		for i, c := range d.cjk {
			if c == r {
				fmt.Fprintf(&sb, "%04X", i+1)
			}
		}
	}
	sb.WriteByte('>')
	return sb.String()
}

func (d pdfDoc) bytes() []byte {
	var buf bytes.Buffer
	var offsets []int
	// Objects are numbered in the order they are written; reserve numbers
	// up front where they are referred to before being written.
	add := func(num int, body string) {
		for len(offsets) < num {
			offsets = append(offsets, 0)
		}
		offsets[num-1] = buf.Len()
		fmt.Fprintf(&buf, "%d 0 obj\n%s\nendobj\n", num, body)
	}
	stream := func(num int, dict, data string) {
		if d.compress {
			var z bytes.Buffer
			w := zlib.NewWriter(&z)
			w.Write([]byte(data))
			w.Close()
			data = z.String()
			dict += " /Filter /FlateDecode"
		}
		add(num, fmt.Sprintf("<< %s /Length %d >>\nstream\n%s\nendstream", dict, len(data), data))
	}
	header := d.header
	if header == "" {
		header = "%PDF-1.4"
	}
	buf.WriteString(header + "\n%\xE2\xE3\xCF\xD3\n")

	// 1 catalog, 2 page tree, 3 Helvetica, 4 info, 5 CJK font, 6 its
	// descendant, 7 its ToUnicode map; pages from 10.
	next := 10
	var kids []string
	type placed struct{ page, content int }
	var layout []placed
	for range d.pages {
		layout = append(layout, placed{next, next + 1})
		kids = append(kids, fmt.Sprintf("%d 0 R", next))
		next += 2
	}
	add(1, "<< /Type /Catalog /Pages 2 0 R >>")
	add(2, fmt.Sprintf("<< /Type /Pages /Kids [%s] /Count %d >>", strings.Join(kids, " "), len(d.pages)))
	add(3, "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
	title := "(" + d.title + ")"
	if strings.HasPrefix(d.title, "<") { // a hex string, written as is
		title = d.title
	}
	add(4, fmt.Sprintf("<< /Title %s /Producer (tandem test) >>", title))
	add(5, "<< /Type /Font /Subtype /Type0 /BaseFont /NotoSansSC /Encoding /Identity-H /DescendantFonts [6 0 R] /ToUnicode 7 0 R >>")
	add(6, "<< /Type /Font /Subtype /CIDFontType2 /BaseFont /NotoSansSC /CIDSystemInfo << /Registry (Adobe) /Ordering (Identity) /Supplement 0 >> /DW 1000 >>")
	var cmap strings.Builder
	cmap.WriteString("/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n/CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n")
	if len(d.cjk) > 0 {
		fmt.Fprintf(&cmap, "%d beginbfchar\n", len(d.cjk))
		for i, r := range d.cjk {
			fmt.Fprintf(&cmap, "<%04X> <%04X>\n", i+1, r)
		}
		cmap.WriteString("endbfchar\n")
	}
	cmap.WriteString("endcmap\nCMapName currentdict /CMap defineresource pop\nend\nend" + d.cmapTail)
	stream(7, "", cmap.String())

	for i, p := range d.pages {
		var xobjects []string
		names := make([]string, 0, len(p.forms))
		for name := range p.forms {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			content := p.forms[name]
			xobjects = append(xobjects, fmt.Sprintf("/%s %d 0 R", name, next))
			stream(next, "/Type /XObject /Subtype /Form /BBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >>", content)
			next++
		}
		res := "/Font << /F1 3 0 R /F2 5 0 R >>"
		if len(xobjects) > 0 {
			res += " /XObject << " + strings.Join(xobjects, " ") + " >>"
		}
		add(layout[i].page, fmt.Sprintf("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << %s >> /Contents %d 0 R >>", res, layout[i].content))
		stream(layout[i].content, "", p.content)
	}

	xref := buf.Len()
	fmt.Fprintf(&buf, "xref\n0 %d\n0000000000 65535 f \n", len(offsets)+1)
	for _, off := range offsets {
		if off == 0 {
			buf.WriteString("0000000000 65535 f \n")
			continue
		}
		fmt.Fprintf(&buf, "%010d 00000 n \n", off)
	}
	fmt.Fprintf(&buf, "trailer\n<< /Size %d /Root 1 0 R /Info 4 0 R >>\nstartxref\n%d\n%%%%EOF\n", len(offsets)+1, xref)
	return buf.Bytes()
}

// buildPDF is a PDF with one page per content stream.
func buildPDF(title string, contents ...string) []byte {
	d := pdfDoc{title: title}
	for _, c := range contents {
		d.pages = append(d.pages, pdfPage{content: c})
	}
	return d.bytes()
}

// pdfLines is a content stream drawing each line 14 points below the last
// in 12-point Helvetica; an empty line leaves a paragraph gap.
func pdfLines(lines ...string) string {
	var sb strings.Builder
	y := 740
	for _, l := range lines {
		if l == "" {
			y -= 14
			continue
		}
		l = strings.NewReplacer(`\`, `\\`, "(", `\(`, ")", `\)`).Replace(l)
		fmt.Fprintf(&sb, "BT /F1 12 Tf 72 %d Td (%s) Tj ET\n", y, l)
		y -= 14
	}
	return sb.String()
}

// objStmPDF is a PDF 1.5 file with a cross-reference stream, whose
// information dictionary (object 6) and title (object 7) are stored in an
// object stream; title is written as given, e.g. "(Hello)".
func objStmPDF(title string) []byte {
	var buf bytes.Buffer
	offsets := map[int]int{}
	add := func(num int, body string) {
		offsets[num] = buf.Len()
		fmt.Fprintf(&buf, "%d 0 obj\n%s\nendobj\n", num, body)
	}
	buf.WriteString("%PDF-1.5\n%\xE2\xE3\xCF\xD3\n")
	content := pdfLines("Stored in a modern file.")
	add(1, "<< /Type /Catalog /Pages 2 0 R >>")
	add(2, "<< /Type /Pages /Kids [3 0 R] /Count 1 >>")
	add(3, "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 8 0 R >> >> /Contents 4 0 R >>")
	add(4, fmt.Sprintf("<< /Length %d >>\nstream\n%s\nendstream", len(content), content))
	info := "<< /Title 7 0 R >>\n"
	objs := info + title
	header := fmt.Sprintf("6 0 7 %d\n", len(info))
	add(5, fmt.Sprintf("<< /Type /ObjStm /N 2 /First %d /Length %d >>\nstream\n%s%s\nendstream", len(header), len(header)+len(objs), header, objs))
	add(8, "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
	// Entries of 1 + 4 + 2 bytes: type, offset or stream, generation or index.
	var xref bytes.Buffer
	entry := func(typ byte, f2 uint32, f3 uint16) {
		xref.Write([]byte{typ, byte(f2 >> 24), byte(f2 >> 16), byte(f2 >> 8), byte(f2), byte(f3 >> 8), byte(f3)})
	}
	entry(0, 0, 65535)
	for num := 1; num <= 9; num++ {
		switch num {
		case 6:
			entry(2, 5, 0)
		case 7:
			entry(2, 5, 1)
		case 9:
			entry(1, uint32(buf.Len()), 0)
		default:
			entry(1, uint32(offsets[num]), 0)
		}
	}
	start := buf.Len()
	fmt.Fprintf(&buf, "9 0 obj\n<< /Type /XRef /Size 10 /W [1 4 2] /Root 1 0 R /Info 6 0 R /Length %d >>\nstream\n", xref.Len())
	buf.Write(xref.Bytes())
	fmt.Fprintf(&buf, "\nendstream\nendobj\nstartxref\n%d\n%%%%EOF\n", start)
	return buf.Bytes()
}
