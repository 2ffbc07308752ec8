package knowledge

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/tandem-chat/tandem/internal/errs"
)

// Parse parses data of the given format and splits it into chunks with the
// default ChunkOptions. Returns errs.Invalid, with a message for the editor
// who uploaded the file, when the data cannot be read or holds no text, and
// errs.Unsupported for an unknown format.
func Parse(format Format, data []byte) (*Parsed, error) {
	return ParseWith(format, data, ChunkOptions{})
}

// ParseWith is Parse with explicit chunk sizes.
func ParseWith(format Format, data []byte, opt ChunkOptions) (*Parsed, error) {
	return parse(format, data, opt)
}

func parse(format Format, data []byte, opt ChunkOptions) (p *Parsed, err error) {
	// A parser bug must cost one upload, not the process.
	defer func() {
		if r := recover(); r != nil {
			recovered(r)
			p, err = nil, errs.Errorf(errs.Invalid, "the file could not be read as %s", formatName(format))
		}
	}()
	opt = opt.normalized()
	switch format {
	case Markdown, Text, CSV, JSON:
		s, err := decodeText(data)
		if err != nil {
			return nil, err
		}
		switch format {
		case Markdown:
			p = parseMarkdown(s, opt)
		case Text:
			p = parseText(s, opt)
		case CSV:
			p, err = parseCSV(s)
		case JSON:
			p, err = parseJSON(s)
		}
		if err != nil {
			return nil, err
		}
	case HTML:
		if p, err = parseHTML(data, opt); err != nil {
			return nil, err
		}
	case PDF:
		if p, err = parsePDF(data, opt); err != nil {
			return nil, err
		}
	default:
		return nil, errs.Errorf(errs.Unsupported, "%q is not a supported document format; upload %s", string(format), supportedTypes)
	}
	p.Title = truncateRunes(oneLine(p.Title), maxTitleRunes)
	if len(p.Chunks) == 0 {
		return nil, errs.Errorf(errs.Invalid, "the file has no text to add to the knowledge base")
	}
	for i := range p.Chunks {
		p.Chunks[i].Ordinal = i
	}
	return p, nil
}

func formatName(f Format) string {
	switch f {
	case Markdown:
		return "Markdown"
	case Text:
		return "text"
	case HTML:
		return "HTML"
	case PDF:
		return "a PDF"
	case CSV:
		return "CSV"
	case JSON:
		return "JSON"
	}
	return string(f)
}

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// decodeText returns data as a string without a byte-order mark. Text
// saved as UTF-16 with a BOM (Windows Notepad's "Unicode") is converted;
// anything else must be UTF-8.
func decodeText(data []byte) (string, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return "", errs.Errorf(errs.Invalid, "the file is empty")
	}
	switch {
	case bytes.HasPrefix(data, []byte{0xFF, 0xFE}):
		data = fromUTF16(data[2:], false)
	case bytes.HasPrefix(data, []byte{0xFE, 0xFF}):
		data = fromUTF16(data[2:], true)
	}
	data = bytes.TrimPrefix(data, utf8BOM)
	if !utf8.Valid(data) {
		line := 1
		for i := 0; i < len(data); {
			r, size := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && size <= 1 {
				break
			}
			if r == '\n' {
				line++
			}
			i += size
		}
		return "", errs.Errorf(errs.Invalid, "the file is not UTF-8 text (the first bad character is on line %d); save it with UTF-8 encoding and upload it again", line)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return "", errs.Errorf(errs.Invalid, "the file is empty")
	}
	return string(data), nil
}

func fromUTF16(b []byte, bigEndian bool) []byte {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		if bigEndian {
			u = append(u, uint16(b[i])<<8|uint16(b[i+1]))
		} else {
			u = append(u, uint16(b[i+1])<<8|uint16(b[i]))
		}
	}
	return []byte(string(utf16.Decode(u)))
}

// cleanText normalises running text: line breaks become \n, characters that
// cannot be stored or shown (NUL, other controls, invalid UTF-8) go, spaces
// collapse, and blank lines go.
func cleanText(s string) string {
	lines := strings.Split(cleanChars(s), "\n")
	out := lines[:0]
	for _, l := range lines {
		if l = strings.Join(strings.Fields(l), " "); l != "" {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// cleanPre is cleanText for preformatted text: indentation is kept.
func cleanPre(s string) string {
	lines := strings.Split(cleanChars(s), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRightFunc(l, unicode.IsSpace)
	}
	return strings.Trim(strings.Join(lines, "\n"), "\n")
}

// oneLine is cleanText on a single line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(cleanChars(s)), " ")
}

var lineBreaks = strings.NewReplacer("\r\n", "\n", "\r", "\n", "\u2028", "\n", "\u2029", "\n")

func cleanChars(s string) string {
	s = lineBreaks.Replace(strings.ToValidUTF8(s, ""))
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\n' || r == '\t':
			return r
		case r == '\u00A0' || r == '\u3000':
			return ' '
		case r == '\uFEFF' || r == '\u200B' || r == '\u00AD':
			return -1 // BOM, zero-width space, soft hyphen
		case unicode.IsControl(r):
			return -1
		}
		return r
	}, s)
}

// Inline FAQ markers: "Q: …" / "A: …", "Question: …", and the Chinese
// 问：/答：. An answer marker inside a question paragraph needs a colon, so
// an "a." in a sentence is not taken for one.
var (
	questionMarker  = regexp.MustCompile(`^(?i:q\d{0,3}\s*[:：.]|question\s*\d{0,3}\s*[:：]|问题?\s*[:：]|問題?\s*[:：])\s*`)
	answerMarker    = regexp.MustCompile(`^(?i:a\d{0,3}\s*[:：.]|answer\s*[:：]|答\s*[:：]|回答\s*[:：])\s*`)
	answerMarkerMid = regexp.MustCompile(`(?:^|\s|[?？。!！])((?i:a\d{0,3}\s*[:：]|answer\s*[:：]|答\s*[:：]|回答\s*[:：])\s*)`)
)

func startsQuestion(p para) bool {
	return !p.pre && (p.boldQuestion || questionMarker.MatchString(p.text))
}

func hasInlineFAQ(ps []para) bool {
	for _, p := range ps {
		if startsQuestion(p) {
			return true
		}
	}
	return false
}

// inlineFAQ reads a FAQ pair starting at paras[i]: a "Q:" paragraph (with
// its "A:" in the same paragraph or the next) or a bold question, and the
// answer paragraphs up to the next question. It returns the index after
// the pair.
func inlineFAQ(paras []para, i int) (question string, answer []para, next int, ok bool) {
	p := paras[i]
	if !startsQuestion(p) {
		return "", nil, 0, false
	}
	j := i + 1
	for j < len(paras) && !startsQuestion(paras[j]) {
		j++
	}
	if loc := questionMarker.FindStringIndex(p.text); loc != nil {
		rest := p.text[loc[1]:]
		if m := answerMarkerMid.FindStringSubmatchIndex(rest); m != nil {
			question = rest[:m[2]]
			answer = append(answer, para{text: rest[m[3]:]})
		} else {
			question = rest
		}
	} else {
		question = p.text
	}
	following := paras[i+1 : j]
	if j == len(paras) {
		// After the last question, only the answer itself: what follows is
		// as likely to be the rest of the document.
		if len(answer) > 0 {
			following = nil
		} else if len(following) > 1 {
			following = following[:1]
		}
		next = i + 1 + len(following)
	} else {
		next = j
	}
	if len(answer) == 0 && len(following) > 0 {
		first := following[0]
		if loc := answerMarker.FindStringIndex(first.text); loc != nil && !first.pre {
			first.text = first.text[loc[1]:]
		}
		answer = append(answer, first)
		following = following[1:]
	}
	answer = append(answer, following...)
	if strings.TrimSpace(question) == "" || joinParas(answer) == "" {
		return "", nil, 0, false
	}
	return question, answer, next, true
}

// rowError collects problems with FAQ rows so an editor sees several at
// once rather than fixing one per upload.
type rowError struct {
	problems []string
	more     int
}

func (e *rowError) add(format string, args ...any) {
	if len(e.problems) == 5 {
		e.more++
		return
	}
	e.problems = append(e.problems, fmt.Sprintf(format, args...))
}

func (e *rowError) err() error {
	if len(e.problems) == 0 {
		return nil
	}
	msg := strings.Join(e.problems, "; ")
	if e.more > 0 {
		msg += fmt.Sprintf("; and %d more", e.more)
	}
	return errs.Errorf(errs.Invalid, "%s", msg)
}
