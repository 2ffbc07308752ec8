package knowledge

import (
	"bytes"
	"compress/zlib"
	"encoding/ascii85"
	"errors"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/ledongthuc/pdf"

	"github.com/tandem-chat/tandem/internal/errs"
)

// Limits on what one PDF may cost. The page tree and resource lookups are
// walked here rather than in the library because a hostile file can make
// them loop.
const (
	maxPDFPages      = 2000
	maxPDFTreeNodes  = 10000
	maxPDFTreeDepth  = 64
	maxPDFOperations = 5_000_000 // content-stream operators over the whole file
	maxPDFTextRunes  = 5_000_000
	maxPDFFormDepth  = 8 // form XObjects drawn inside form XObjects
	maxPDFDecoded    = 64 << 20
	maxCMapEntries   = 65536
	maxPDFWork       = 1_000_000_000 // character-map comparisons, a few seconds
)

var (
	errPDFBudget  = errors.New("pdf: over budget")
	errCorruptPDF = errs.Errorf(errs.Invalid, "the PDF file is damaged or not a PDF and could not be read; open it and save or export it as PDF again")
)

// parsePDF reads the text layer of a PDF, page by page, rebuilding lines
// and paragraphs from where the text is drawn. The title comes from the
// document information. A scan without a text layer is reported as such.
func parsePDF(data []byte, opt ChunkOptions) (p *Parsed, err error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errs.Errorf(errs.Invalid, "the file is empty")
	}
	if !bytes.HasPrefix(data, []byte("%PDF-")) {
		return nil, errCorruptPDF
	}
	// The library reads only PDF 1.x headers; PDF 2.0 files are laid out the
	// same way for what is read here.
	if bytes.HasPrefix(data, []byte("%PDF-2.")) {
		data = append([]byte("%PDF-1.7"), data[len("%PDF-2.0"):]...)
	}
	if err := pdfPrescan(data); err != nil {
		return nil, err
	}
	defer func() {
		if r := recover(); r != nil {
			recovered(r)
			p, err = nil, errCorruptPDF
		}
	}()
	r, err := pdf.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		msg := strings.ToLower(err.Error())
		if strings.Contains(msg, "encrypt") || strings.Contains(msg, "password") {
			return nil, errs.Errorf(errs.Invalid, "the PDF is password-protected or encrypted; remove the protection and upload it again")
		}
		return nil, errCorruptPDF
	}
	ex := &pdfExtractor{}
	title := pdfString(r.Trailer().Key("Info").Key("Title"))
	pages := ex.pages(r.Trailer().Key("Root").Key("Pages"))
	if len(pages) == 0 {
		return nil, errCorruptPDF
	}

	b := newBuilder(opt)
	read, failed := 0, 0
	for _, page := range pages {
		text, err := ex.pageText(page)
		if errors.Is(err, errPDFBudget) {
			return nil, errs.Errorf(errs.TooLarge, "the PDF has too much content to read; split it into smaller files")
		}
		if err != nil {
			failed++
			continue
		}
		read++
		for _, para := range pdfParagraphs(text) {
			b.paragraph(para)
		}
	}
	if read == 0 && failed > 0 {
		return nil, errCorruptPDF
	}
	chunks := b.result()
	if len(chunks) == 0 {
		return nil, errs.Errorf(errs.Invalid, "the PDF has no text layer (it may be a scanned image); upload a PDF with selectable text, or the text itself")
	}
	return &Parsed{Title: title, Chunks: chunks}, nil
}

// pdfString decodes a text string: UTF-16 with a byte-order mark or
// PDFDocEncoding as the standard says, and UTF-8 as some writers use
// anyway.
func pdfString(v pdf.Value) string {
	raw := v.RawString()
	if !strings.HasPrefix(raw, "\xFE\xFF") && utf8.ValidString(raw) {
		return raw
	}
	return v.Text()
}

// pdfExtractor keeps the budget shared by all pages of a file.
type pdfExtractor struct {
	ops     int
	runes   int
	decoded int // bytes of streams read to check them
	work    int // character-map lookups
}

// pages lists the page dictionaries in order, walking the page tree with
// bounds so that a tree that refers to itself ends.
func (ex *pdfExtractor) pages(root pdf.Value) []pdf.Value {
	var out []pdf.Value
	nodes := 0
	var visit func(v pdf.Value, depth int)
	visit = func(v pdf.Value, depth int) {
		if v.Kind() != pdf.Dict || nodes >= maxPDFTreeNodes || depth > maxPDFTreeDepth || len(out) >= maxPDFPages {
			return
		}
		nodes++
		kids := v.Key("Kids")
		if v.Key("Type").Name() == "Pages" || v.Key("Type").Name() != "Page" && kids.Kind() == pdf.Array {
			for i := 0; i < kids.Len(); i++ {
				visit(kids.Index(i), depth+1)
			}
			return
		}
		out = append(out, v)
	}
	visit(root, 0)
	return out
}

// inherited finds a page attribute on the page or its ancestors, giving up
// after a bounded number of parents.
func inherited(v pdf.Value, key string) pdf.Value {
	for i := 0; i < maxPDFTreeDepth && v.Kind() == pdf.Dict; i++ {
		if r := v.Key(key); !r.IsNull() {
			return r
		}
		v = v.Key("Parent")
	}
	return pdf.Value{}
}

// span is a run of text drawn at one place.
type span struct {
	x, y, endX, size float64
	text             string
}

// pageText returns the text of one page with \n between lines and \n\n
// between paragraphs. A panic in the library is a damaged page.
func (ex *pdfExtractor) pageText(page pdf.Value) (text string, err error) {
	defer func() {
		if r := recover(); r != nil {
			recovered(r)
			if e, ok := r.(error); ok && errors.Is(e, errPDFBudget) {
				err = errPDFBudget
				return
			}
			text, err = "", errCorruptPDF
		}
	}()
	var spans []span
	contents := page.Key("Contents")
	if contents.IsNull() {
		return "", nil
	}
	ex.run(contents, inherited(page, "Resources"), identity, &spans, 0)
	return layout(spans), nil
}

// matrix is an affine transform [a b c d e f], as PDF writes them.
type matrix [6]float64

var identity = matrix{1, 0, 0, 1, 0, 0}

// mul returns m × n (apply m, then n).
func (m matrix) mul(n matrix) matrix {
	return matrix{
		m[0]*n[0] + m[1]*n[2], m[0]*n[1] + m[1]*n[3],
		m[2]*n[0] + m[3]*n[2], m[2]*n[1] + m[3]*n[3],
		m[4]*n[0] + m[5]*n[2] + n[4], m[4]*n[1] + m[5]*n[3] + n[5],
	}
}

type textState struct {
	ctm            matrix
	tm, tlm        matrix
	font           *pdfFont
	size           float64 // Tfs
	leading        float64 // TL
	charSp, wordSp float64 // Tc, Tw
	scale          float64 // Th
	rise           float64
}

// run interprets one content stream, appending the text it draws.
func (ex *pdfExtractor) run(strm, resources pdf.Value, ctm matrix, spans *[]span, depth int) {
	fonts := map[string]*pdfFont{}
	g := textState{ctm: ctm, tm: identity, tlm: identity, scale: 1}
	var stack []textState

	show := func(raw string) {
		if g.font == nil {
			g.font = ex.font(pdf.Value{})
		}
		if ex.work += len(raw) * (g.font.entries + 1); ex.work > maxPDFWork {
			panic(errPDFBudget)
		}
		s := g.font.enc.Decode(raw)
		n := utf8.RuneCountInString(s)
		if ex.runes += n; ex.runes > maxPDFTextRunes {
			panic(errPDFBudget)
		}
		trm := matrix{g.size * g.scale, 0, 0, g.size, 0, g.rise}.mul(g.tm).mul(g.ctm)
		size := math.Hypot(trm[2], trm[3])
		adv := g.font.advance(raw, n, g)
		g.tm = matrix{1, 0, 0, 1, adv * g.scale, 0}.mul(g.tm)
		end := matrix{g.size * g.scale, 0, 0, g.size, 0, g.rise}.mul(g.tm).mul(g.ctm)
		*spans = append(*spans, span{x: trm[4], y: trm[5], endX: end[4], size: size, text: s})
	}
	nextLine := func(tx, ty float64) {
		g.tlm = matrix{1, 0, 0, 1, tx, ty}.mul(g.tlm)
		g.tm = g.tlm
	}

	if !ex.pdfSafe(strm) {
		if depth == 0 {
			panic(errCorruptPDF) // the page is damaged
		}
		return // skip the form
	}
	pdf.Interpret(strm, func(stk *pdf.Stack, op string) {
		if ex.ops++; ex.ops > maxPDFOperations {
			panic(errPDFBudget)
		}
		n := stk.Len()
		args := make([]pdf.Value, n)
		for i := n - 1; i >= 0; i-- {
			args[i] = stk.Pop()
		}
		num := func(i int) float64 {
			if i < len(args) {
				return args[i].Float64()
			}
			return 0
		}
		switch op {
		case "q":
			if len(stack) < 256 {
				stack = append(stack, g)
			}
		case "Q":
			if len(stack) > 0 {
				g = stack[len(stack)-1]
				stack = stack[:len(stack)-1]
			}
		case "cm":
			if n == 6 {
				g.ctm = matrix{num(0), num(1), num(2), num(3), num(4), num(5)}.mul(g.ctm)
			}
		case "BT":
			g.tm, g.tlm = identity, identity
		case "Tf":
			if n == 2 {
				name := args[0].Name()
				f, ok := fonts[name]
				if !ok {
					f = ex.font(resources.Key("Font").Key(name))
					fonts[name] = f
				}
				g.font, g.size = f, num(1)
			}
		case "Tc":
			g.charSp = num(0)
		case "Tw":
			g.wordSp = num(0)
		case "Tz":
			g.scale = num(0) / 100
		case "TL":
			g.leading = num(0)
		case "Ts":
			g.rise = num(0)
		case "Td":
			nextLine(num(0), num(1))
		case "TD":
			g.leading = -num(1)
			nextLine(num(0), num(1))
		case "Tm":
			if n == 6 {
				g.tm = matrix{num(0), num(1), num(2), num(3), num(4), num(5)}
				g.tlm = g.tm
			}
		case "T*":
			nextLine(0, -g.leading)
		case "Tj":
			if n == 1 {
				show(args[0].RawString())
			}
		case "'":
			if n == 1 {
				nextLine(0, -g.leading)
				show(args[0].RawString())
			}
		case "\"":
			if n == 3 {
				g.wordSp, g.charSp = num(0), num(1)
				nextLine(0, -g.leading)
				show(args[2].RawString())
			}
		case "TJ":
			if n != 1 {
				return
			}
			arr := args[0]
			for i := 0; i < arr.Len(); i++ {
				v := arr.Index(i)
				if v.Kind() == pdf.String {
					show(v.RawString())
				} else {
					tx := -v.Float64() / 1000 * g.size * g.scale
					g.tm = matrix{1, 0, 0, 1, tx, 0}.mul(g.tm)
				}
			}
		case "Do":
			// Text inside form XObjects (as some exporters write it).
			if n != 1 || depth >= maxPDFFormDepth {
				return
			}
			x := resources.Key("XObject").Key(args[0].Name())
			if x.Kind() != pdf.Stream || x.Key("Subtype").Name() != "Form" {
				return
			}
			m := identity
			if mv := x.Key("Matrix"); mv.Kind() == pdf.Array && mv.Len() == 6 {
				for i := range m {
					m[i] = mv.Index(i).Float64()
				}
			}
			res := x.Key("Resources")
			if res.IsNull() {
				res = resources
			}
			ex.run(x, res, m.mul(g.ctm), spans, depth+1)
		}
	})
}

// layout joins spans into lines and paragraphs by where they are drawn:
// a drop of about a line starts a new line, a larger drop a paragraph, and
// a gap on the same line is a space.
func layout(spans []span) string {
	var sb strings.Builder
	var prev *span
	space := false // whether sb ends in a space
	for i := range spans {
		s := &spans[i]
		if strings.TrimSpace(s.text) == "" {
			if prev != nil && s.text != "" {
				prev.endX = math.Max(prev.endX, s.endX)
				if !space {
					sb.WriteByte(' ')
					space = true
				}
			}
			continue
		}
		if prev != nil {
			size := math.Max(math.Max(prev.size, s.size), 1)
			dy := prev.y - s.y
			switch {
			case math.Abs(dy) > 0.5*size:
				if dy > 1.7*size || dy < -5*size {
					sb.WriteString("\n\n")
				} else {
					sb.WriteByte('\n')
				}
			case !space && (s.x-prev.endX > 0.15*size || s.x < prev.x-size) && joiner(prev.text, s.text, false) == " ":
				sb.WriteByte(' ')
			}
		}
		sb.WriteString(s.text)
		space = strings.HasSuffix(s.text, " ")
		prev = s
	}
	return sb.String()
}

// pdfParagraphs splits page text into paragraphs, joining the lines of each
// (and words hyphenated across a line break).
func pdfParagraphs(text string) []para {
	var out []para
	for _, block := range strings.Split(text, "\n\n") {
		var sb strings.Builder
		prev := ""
		for _, line := range strings.Split(block, "\n") {
			line = strings.TrimSpace(line)
			if line == "" {
				continue
			}
			switch {
			case prev == "":
				sb.WriteString(line)
			case hyphenated(prev, line):
				// The hyphen was already written; a word split over two lines
				// is one word.
				out := sb.String()
				sb.Reset()
				sb.WriteString(out[:len(out)-1])
				sb.WriteString(line)
			default:
				sb.WriteString(joiner(prev, line, false))
				sb.WriteString(line)
			}
			prev = line
		}
		if sb.Len() > 0 {
			out = append(out, para{text: sb.String()})
		}
	}
	return out
}

func hyphenated(prev, next string) bool {
	if !strings.HasSuffix(prev, "-") || len(prev) < 2 {
		return false
	}
	before, _ := utf8.DecodeLastRuneInString(prev[:len(prev)-1])
	first, _ := utf8.DecodeRuneInString(next)
	return unicode.IsLetter(before) && unicode.IsLower(first)
}

// The library's lexer loops forever when a stream it tokenises ends inside
// a hex string: at the end of such a stream it reads endless line feeds.
// It tokenises content streams and forms (checked in run), ToUnicode maps
// (checked in encoding) and object streams, which the library opens on its
// own whenever it looks up an object; those are checked in the raw file
// before the library sees it.

var (
	pdfLength      = regexp.MustCompile(`/Length\s+(\d+)(?:\s+(\d+)\s+R)?`)
	pdfFilterName  = regexp.MustCompile(`/Filter\s*(/[A-Za-z0-9#]+)`)
	pdfFilterArray = regexp.MustCompile(`/Filter\s*\[([^\]]*)\]`)
	pdfNameEscape  = regexp.MustCompile(`#[0-9A-Fa-f]{2}`)
)

// pdfPrescan returns errCorruptPDF when an object stream ends inside a hex
// string, and errs.TooLarge when object streams inflate beyond a sane size.
func pdfPrescan(data []byte) error {
	if !pdfXrefTablesOK(data) {
		return errCorruptPDF
	}
	budget := maxPDFDecoded
	for off := 0; off < len(data); {
		k := bytes.Index(data[off:], []byte("stream"))
		if k < 0 {
			break
		}
		pos := off + k
		off = pos + len("stream")
		if pos >= 3 && string(data[pos-3:pos]) == "end" {
			continue
		}
		start := off
		if start < len(data) && data[start] == '\r' {
			start++
		}
		if start < len(data) && data[start] == '\n' {
			start++
		}
		if start == off {
			continue // not the keyword
		}
		end := len(data)
		if e := bytes.Index(data[start:], []byte("endstream")); e >= 0 {
			end = start + e
		}
		off = end
		from := max(0, pos-65536)
		j := bytes.LastIndex(data[from:pos], []byte("obj"))
		if j < 0 {
			continue
		}
		// Names may be written with #xx escapes; the library reads
		// /Fir#73t as /First.
		dict := pdfNameEscape.ReplaceAllFunc(data[from+j+len("obj"):pos], func(e []byte) []byte {
			v, _ := strconv.ParseUint(string(e[1:]), 16, 8)
			return []byte{byte(v)}
		})
		if bytes.Contains(dict, []byte("/XRef")) && !pdfXrefStreamOK(dict, pdfMaxObjects(data)) {
			return errCorruptPDF
		}
		// The library allocates a row of /Columns bytes for a predictor.
		if m := pdfColumns.FindSubmatch(dict); m != nil {
			if n, err := strconv.Atoi(string(m[1])); err != nil || n > 1<<16 {
				return errCorruptPDF
			}
		}
		// Only object streams have /First (the library insists on it).
		if !bytes.Contains(dict, []byte("/First")) {
			continue
		}
		if bytes.Contains(dict, []byte("/Predictor")) {
			return errCorruptPDF
		}
		views := [][]byte{bytes.TrimRight(data[start:end], "\r\n")}
		length, known := pdfStreamLength(data, dict)
		if known && length <= len(data)-start {
			views = append(views, data[start:start+length])
		}
		for _, v := range views {
			decoded, ok := pdfDecode(v, dict, budget+1)
			if len(decoded) > budget {
				return errs.Errorf(errs.TooLarge, "the PDF has too much content to read; split it into smaller files")
			}
			if ok && pdfEndsInHex(decoded) {
				return errCorruptPDF
			}
		}
		// An unknown length could cut an unfiltered stream anywhere, so
		// it must not hold a hex string at all.
		if !known && !bytes.Contains(dict, []byte("/Filter")) && pdfHasHex(views[0]) {
			return errCorruptPDF
		}
		budget -= len(views[0])
	}
	return nil
}

// pdfFont is a font with its text decoder.
type pdfFont struct {
	pdf.Font
	enc     pdf.TextEncoding
	entries int // mappings in its ToUnicode map, each tried per character

	// What advancing over text needs, read once.
	composite bool      // a Type0 font, with 2-byte codes
	dw        float64   // its default glyph width
	first     int       // the code of widths[0]
	widths    []float64 // a simple font's glyph widths, nil when absent
}

// advance is how far drawing raw (n characters once decoded) moves along
// the line, in text space. Fonts without widths get an average width, and
// composite (CJK) fonts their default width for each 2-byte code.
func (f *pdfFont) advance(raw string, n int, g textState) float64 {
	switch {
	case f.composite:
		return float64(len(raw)/2) * (f.dw/1000*g.size + g.charSp)
	case f.widths != nil:
		adv := 0.0
		for i := 0; i < len(raw); i++ {
			w := 0.0
			if k := int(raw[i]) - f.first; k >= 0 && k < len(f.widths) {
				w = f.widths[k]
			}
			adv += w/1000*g.size + g.charSp
			if raw[i] == ' ' {
				adv += g.wordSp
			}
		}
		return adv
	}
	return float64(n) * (0.5*g.size + g.charSp)
}

// font prepares a font dictionary; a font whose ToUnicode map could not be
// read safely shows no text.
func (ex *pdfExtractor) font(v pdf.Value) *pdfFont {
	f := &pdfFont{Font: pdf.Font{V: v}, dw: 1000}
	if v.Key("Subtype").Name() == "Type0" {
		f.composite = true
		if dw := v.Key("DescendantFonts").Index(0).Key("DW"); dw.Kind() == pdf.Integer || dw.Kind() == pdf.Real {
			f.dw = dw.Float64()
		}
	} else if w := v.Key("Widths"); w.Kind() == pdf.Array {
		f.first = int(v.Key("FirstChar").Int64())
		f.widths = make([]float64, min(w.Len(), 256))
		for i := range f.widths {
			f.widths[i] = w.Index(i).Float64()
		}
	}
	if tu := v.Key("ToUnicode"); tu.Kind() == pdf.Stream {
		b, err := ex.readStream(tu)
		entries, ok := cmapEntries(b)
		if err == nil && (!ok || pdfEndsInHex(b)) {
			f.enc = noText{}
			return f
		}
		f.entries = entries
	}
	f.enc = f.Encoder()
	return f
}

type noText struct{}

func (noText) Decode(string) string { return "" }

// The library sizes its table of objects by the object numbers the
// cross-reference sections declare, so a 200-byte file declaring object
// 3,000,000,000 makes it allocate 96 GB and kills the process. Object
// numbers are bounded here by what the file could hold.

var (
	pdfXrefSize  = regexp.MustCompile(`/Size\s+(\d+)`)
	pdfXrefIndex = regexp.MustCompile(`/Index\s*\[([^\]]*)\]`)
	pdfXrefW     = regexp.MustCompile(`/W\s*\[([^\]]*)\]`)
	pdfColumns   = regexp.MustCompile(`/Columns\s+(\d+)`)
)

// pdfMaxObjects is the most objects a file of this size could define,
// generously: even in a compressed object stream an object takes a few
// bytes.
func pdfMaxObjects(data []byte) int64 { return int64(len(data))/4 + 1<<16 }

// pdfXrefTablesOK walks every classic cross-reference section ("xref",
// then subsections of a first object number, a count and that many
// entries, up to "trailer") as the library would, and checks the numbers.
func pdfXrefTablesOK(data []byte) bool {
	limit := pdfMaxObjects(data)
	for off := 0; off < len(data); {
		k := bytes.Index(data[off:], []byte("xref"))
		if k < 0 {
			break
		}
		pos := off + k
		off = pos + len("xref")
		if pos >= 5 && string(data[pos-5:pos]) == "start" {
			continue
		}
		i := off
		next := func() string {
			for i < len(data) && pdfSpace(data[i]) {
				i++
			}
			j := i
			for i < len(data) && !pdfSpace(data[i]) && !pdfDelim(data[i]) {
				i++
			}
			return string(data[j:i])
		}
		for {
			t := next()
			if t == "" || t == "trailer" {
				break
			}
			first, err1 := strconv.ParseInt(t, 10, 64)
			count, err2 := strconv.ParseInt(next(), 10, 64)
			if err1 != nil || err2 != nil {
				break // the library stops here too
			}
			if first < 0 || count < 0 || first > limit || count > limit-first {
				return false
			}
			for range 3 * count {
				if next() == "" {
					break
				}
			}
		}
	}
	return true
}

// pdfXrefStreamOK checks the /Size, /Index and /W (field widths, which size
// a buffer) of a cross-reference stream.
func pdfXrefStreamOK(dict []byte, limit int64) bool {
	if m := pdfXrefW.FindSubmatch(dict); m != nil {
		for _, f := range strings.Fields(string(m[1])) {
			if n, err := strconv.Atoi(f); err != nil || n > 16 {
				return false
			}
		}
	}
	if m := pdfXrefSize.FindSubmatch(dict); m != nil {
		if n, err := strconv.ParseInt(string(m[1]), 10, 64); err != nil || n > limit {
			return false
		}
	}
	if m := pdfXrefIndex.FindSubmatch(dict); m != nil {
		f := strings.Fields(string(m[1]))
		for i := 0; i+1 < len(f); i += 2 {
			first, err1 := strconv.ParseInt(f[i], 10, 64)
			count, err2 := strconv.ParseInt(f[i+1], 10, 64)
			if err1 != nil || err2 != nil || first < 0 || count < 0 || first > limit || count > limit-first {
				return false
			}
		}
	}
	return true
}

// pdfSafe reports whether the library can tokenise a stream (or an array
// of streams, read as one) without looping, reading it through the same
// filters. A stream the library cannot read fails there with an error,
// which is safe too.
func (ex *pdfExtractor) pdfSafe(strm pdf.Value) bool {
	b, err := ex.readStream(strm)
	return err != nil || !pdfEndsInHex(b)
}

// readStream reads a stream, or an array of streams as one, through its
// filters, within the budget.
func (ex *pdfExtractor) readStream(strm pdf.Value) ([]byte, error) {
	var readers []io.Reader
	if strm.Kind() == pdf.Array {
		for i := 0; i < strm.Len(); i++ {
			readers = append(readers, strm.Index(i).Reader())
		}
	} else {
		readers = append(readers, strm.Reader())
	}
	left := maxPDFDecoded - ex.decoded
	b, err := io.ReadAll(io.LimitReader(io.MultiReader(readers...), int64(left)+1))
	if ex.decoded += len(b); ex.decoded > maxPDFDecoded {
		panic(errPDFBudget)
	}
	return b, err
}

// pdfCMapBlock finds the count before each block of a character map; the
// library loops that many times whatever the block holds.
var pdfCMapBlock = regexp.MustCompile(`(\S*)\s+begin(?:bfchar|bfrange|codespacerange)\b`)

// cmapEntries checks a ToUnicode map's block counts (the format allows 100
// a block) and returns how many mappings it declares, which is what each
// character costs to look up.
func cmapEntries(b []byte) (int, bool) {
	total := 0
	for _, m := range pdfCMapBlock.FindAllSubmatch(b, -1) {
		n, err := strconv.Atoi(string(m[1]))
		if err != nil || n < 0 || n > 1000 {
			return 0, false
		}
		if total += n; total > maxCMapEntries {
			return 0, false
		}
	}
	return total, true
}

// pdfStreamLength reads /Length from the dictionary, following an
// indirect reference when the object is written out in the file.
func pdfStreamLength(data, dict []byte) (int, bool) {
	m := pdfLength.FindSubmatch(dict)
	if m == nil {
		return 0, false
	}
	n, err := strconv.Atoi(string(m[1]))
	if err != nil {
		return 0, false
	}
	if m[2] == nil {
		return n, true
	}
	ref := regexp.MustCompile(`(?:^|[^0-9])` + string(m[1]) + `\s+` + string(m[2]) + `\s+obj\s*(\d+)`)
	if r := ref.FindSubmatch(data); r != nil {
		if n, err := strconv.Atoi(string(r[1])); err == nil {
			return n, true
		}
	}
	return 0, false
}

// pdfDecode applies the stream's filters as the library would, reading at
// most limit bytes. ok is false when the library would fail on the stream
// with an error rather than read it to a clean end.
func pdfDecode(raw, dict []byte, limit int) (decoded []byte, ok bool) {
	var names []string
	if m := pdfFilterArray.FindSubmatch(dict); m != nil {
		names = strings.Fields(strings.ReplaceAll(string(m[1]), "/", " "))
	} else if m := pdfFilterName.FindSubmatch(dict); m != nil {
		names = []string{string(m[1][1:])}
	}
	var rd io.Reader = bytes.NewReader(raw)
	for _, name := range names {
		switch name {
		case "FlateDecode":
			zr, err := zlib.NewReader(rd)
			if err != nil {
				return nil, false
			}
			rd = zr
		case "ASCII85Decode":
			rd = ascii85.NewDecoder(&ascii85Cleaner{r: rd})
		default:
			return nil, false
		}
	}
	decoded, err := io.ReadAll(io.LimitReader(rd, int64(limit)))
	return decoded, err == nil
}

// ascii85Cleaner drops what the ASCII85 decoder would choke on: white
// space, and everything from the "~>" end marker.
type ascii85Cleaner struct {
	r    io.Reader
	done bool
	tail bool // the last byte read was '~'
}

func (a *ascii85Cleaner) Read(p []byte) (int, error) {
	if a.done {
		return 0, io.EOF
	}
	n, err := a.r.Read(p)
	out := p[:0]
	for _, c := range p[:n] {
		if a.tail && c == '>' {
			a.done = true
			break
		}
		a.tail = c == '~'
		if c > ' ' && c != '~' {
			out = append(out, c)
		}
	}
	if a.done && err == nil {
		err = io.EOF
	}
	return len(out), err
}

// pdfEndsInHex walks b as the library's lexer would and reports whether it
// ends inside a hex string.
func pdfEndsInHex(b []byte) bool {
	n := len(b)
	for i := 0; i < n; {
		switch c := b[i]; {
		case pdfSpace(c):
			i++
		case c == '%':
			for i < n && b[i] != '\r' && b[i] != '\n' {
				i++
			}
		case c == '(':
			i++
			for depth := 1; i < n && depth > 0; i++ {
				switch b[i] {
				case '\\':
					i++
				case '(':
					depth++
				case ')':
					depth--
				}
			}
		case c == '<' && i+1 < n && b[i+1] == '<':
			i += 2
		case c == '<':
			i++
			for {
				for i < n && pdfSpace(b[i]) {
					i++
				}
				if i >= n {
					return true
				}
				c1 := b[i]
				i++
				if c1 == '>' {
					break
				}
				for i < n && pdfSpace(b[i]) {
					i++
				}
				if i >= n {
					return true
				}
				c2 := b[i]
				i++
				if !isHex(c1) || !isHex(c2) {
					break // the library stops with an error here
				}
			}
		case c == '/':
			i++
			for i < n && !pdfDelim(b[i]) && !pdfSpace(b[i]) {
				if b[i] == '#' {
					i += 2
				}
				i++
			}
		case pdfDelim(c):
			i++
		default:
			for i < n && !pdfDelim(b[i]) && !pdfSpace(b[i]) {
				i++
			}
		}
	}
	return false
}

// pdfHasHex reports whether b holds a hex string outside literal strings
// and comments.
func pdfHasHex(b []byte) bool {
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '%':
			for i < len(b) && b[i] != '\r' && b[i] != '\n' {
				i++
			}
		case '(':
			depth := 1
			for i++; i < len(b) && depth > 0; i++ {
				switch b[i] {
				case '\\':
					i++
				case '(':
					depth++
				case ')':
					depth--
				}
			}
			i--
		case '<':
			if i+1 < len(b) && b[i+1] == '<' {
				i++
				continue
			}
			return true
		}
	}
	return false
}

func pdfSpace(c byte) bool {
	return c == 0 || c == '\t' || c == '\n' || c == '\f' || c == '\r' || c == ' '
}

func pdfDelim(c byte) bool { return strings.IndexByte("<>()[]{}/%", c) >= 0 }

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
