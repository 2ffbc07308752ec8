package knowledge

import (
	"bytes"
	"errors"
	"math"
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
	defer func() {
		if r := recover(); r != nil {
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
	ops   int
	runes int
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
	font           *pdf.Font
	size           float64 // Tfs
	leading        float64 // TL
	charSp, wordSp float64 // Tc, Tw
	scale          float64 // Th
	rise           float64
}

// run interprets one content stream, appending the text it draws.
func (ex *pdfExtractor) run(strm, resources pdf.Value, ctm matrix, spans *[]span, depth int) {
	fonts := map[string]*pdf.Font{}
	g := textState{ctm: ctm, tm: identity, tlm: identity, scale: 1}
	var stack []textState

	show := func(raw string) {
		if g.font == nil {
			g.font = &pdf.Font{}
		}
		s := g.font.Encoder().Decode(raw)
		n := utf8.RuneCountInString(s)
		if ex.runes += n; ex.runes > maxPDFTextRunes {
			panic(errPDFBudget)
		}
		trm := matrix{g.size * g.scale, 0, 0, g.size, 0, g.rise}.mul(g.tm).mul(g.ctm)
		size := math.Hypot(trm[2], trm[3])
		// Advance by the glyph widths; fonts without widths get an average.
		adv := float64(n) * (0.5*g.size + g.charSp)
		if g.font.V.Key("Widths").Kind() == pdf.Array {
			adv = 0
			for i := 0; i < len(raw); i++ {
				adv += g.font.Width(int(raw[i]))/1000*g.size + g.charSp
				if raw[i] == ' ' {
					adv += g.wordSp
				}
			}
		}
		g.tm = matrix{1, 0, 0, 1, adv * g.scale, 0}.mul(g.tm)
		end := matrix{g.size * g.scale, 0, 0, g.size, 0, g.rise}.mul(g.tm).mul(g.ctm)
		*spans = append(*spans, span{x: trm[4], y: trm[5], endX: end[4], size: size, text: s})
	}
	nextLine := func(tx, ty float64) {
		g.tlm = matrix{1, 0, 0, 1, tx, ty}.mul(g.tlm)
		g.tm = g.tlm
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
					f = &pdf.Font{V: resources.Key("Font").Key(name)}
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
			case !space && (s.x-prev.endX > 0.15*size || s.x < prev.x-size):
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
