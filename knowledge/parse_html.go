package knowledge

import (
	"bytes"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
	"golang.org/x/net/html/charset"

	"github.com/tandem-chat/tandem/internal/errs"
)

// maxHTMLDepth bounds recursion over the element tree; deeper markup is read
// as flat text.
const maxHTMLDepth = 256

// skippedElements hold no content a customer would read on the page.
var skippedElements = map[atom.Atom]bool{
	atom.Script: true, atom.Style: true, atom.Nav: true, atom.Header: true,
	atom.Footer: true, atom.Aside: true, atom.Noscript: true, atom.Template: true,
	atom.Form: true, atom.Button: true, atom.Select: true, atom.Textarea: true,
	atom.Svg: true, atom.Math: true, atom.Iframe: true, atom.Object: true,
	atom.Canvas: true, atom.Audio: true, atom.Video: true, atom.Dialog: true,
	atom.Link: true, atom.Meta: true,
}

// skippedRoles are ARIA landmarks for page furniture, used on plain divs.
var skippedRoles = map[string]bool{
	"navigation": true, "banner": true, "contentinfo": true, "complementary": true, "search": true,
}

// blockElements start a new paragraph.
var blockElements = map[atom.Atom]bool{
	atom.P: true, atom.Div: true, atom.Section: true, atom.Article: true, atom.Main: true,
	atom.Blockquote: true, atom.Pre: true, atom.Ul: true, atom.Ol: true, atom.Li: true,
	atom.Table: true, atom.Thead: true, atom.Tbody: true, atom.Tfoot: true, atom.Tr: true,
	atom.Caption: true, atom.Figure: true, atom.Figcaption: true, atom.Address: true,
	atom.Fieldset: true, atom.Hr: true, atom.Dl: true, atom.Dt: true, atom.Dd: true,
	atom.Details: true, atom.Summary: true, atom.Body: true, atom.Html: true,
	atom.Center: true, atom.Hgroup: true,
}

var headingLevel = map[atom.Atom]int{
	atom.H1: 1, atom.H2: 2, atom.H3: 3, atom.H4: 4, atom.H5: 5, atom.H6: 6,
}

// parseHTML reads the visible text of an HTML page: headings give the
// heading path, page furniture (scripts, navigation, headers, footers,
// forms…) is dropped, and <details>/<summary> and <dt>/<dd> become FAQ
// pairs. Pages in a legacy encoding are converted using their declared
// charset.
func parseHTML(data []byte, opt ChunkOptions) (*Parsed, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errs.Errorf(errs.Invalid, "the file is empty")
	}
	if !utf8.Valid(data) && !bytes.HasPrefix(data, []byte{0xFF, 0xFE}) && !bytes.HasPrefix(data, []byte{0xFE, 0xFF}) {
		enc, _, _ := charset.DetermineEncoding(data, "text/html")
		if decoded, err := enc.NewDecoder().Bytes(data); err == nil {
			data = decoded
		}
	} else if s, err := decodeText(data); err == nil {
		data = []byte(s)
	}
	root, err := html.Parse(bytes.NewReader(data))
	if err != nil {
		// The parser refuses some pathological markup (elements nested
		// over 512 deep); the tokens still carry the text.
		return htmlTokens(data, opt), nil
	}
	w := &htmlWalker{b: newBuilder(opt)}
	w.walk(root, 0)
	w.flushPara()
	title := w.title
	if title == "" {
		title = w.firstH1
	}
	return &Parsed{Title: title, Chunks: w.b.result()}, nil
}

// htmlWalker turns an element tree into builder calls.
type htmlWalker struct {
	b       *builder
	text    strings.Builder // the paragraph being read
	pre     int             // depth inside <pre>
	title   string
	firstH1 string
	article int // depth inside <article> or <main>
	// collect, when set, receives paragraphs instead of b, to gather the
	// answer of a FAQ pair; headings inside it are read as paragraphs.
	collect *[]para
}

func (w *htmlWalker) flushPara() {
	t := w.text.String()
	w.text.Reset()
	if strings.TrimSpace(t) == "" {
		return
	}
	p := para{text: t, pre: w.pre > 0}
	if w.collect != nil {
		if p.pre {
			p.text = cleanPre(p.text)
		} else {
			p.text = cleanText(p.text)
		}
		if p.text != "" {
			*w.collect = append(*w.collect, p)
		}
		return
	}
	w.b.paragraph(p)
}

func hidden(n *html.Node) bool {
	for _, a := range n.Attr {
		switch strings.ToLower(a.Key) {
		case "hidden":
			return true
		case "aria-hidden":
			if strings.EqualFold(strings.TrimSpace(a.Val), "true") {
				return true
			}
		case "role":
			if skippedRoles[strings.ToLower(strings.TrimSpace(a.Val))] {
				return true
			}
		case "style":
			v := strings.ToLower(strings.ReplaceAll(a.Val, " ", ""))
			if strings.Contains(v, "display:none") || strings.Contains(v, "visibility:hidden") {
				return true
			}
		}
	}
	return false
}

func (w *htmlWalker) walk(n *html.Node, depth int) {
	switch n.Type {
	case html.TextNode:
		w.addText(n.Data)
		return
	case html.DocumentNode:
		w.children(n, depth)
		return
	case html.ElementNode:
	default:
		return
	}
	// A <header> inside an article holds the article's own title, unlike
	// the page's header.
	articleHeader := n.DataAtom == atom.Header && w.article > 0
	if skippedElements[n.DataAtom] && !articleHeader || hidden(n) {
		return
	}
	if depth > maxHTMLDepth {
		w.addText(" " + textOf(n) + " ")
		return
	}
	switch n.DataAtom {
	case atom.Title:
		if w.title == "" {
			w.title = textOf(n)
		}
		return
	case atom.Head:
		// Only the title is visible; walk for it alone.
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			if c.Type == html.ElementNode && c.DataAtom == atom.Title && w.title == "" {
				w.title = textOf(c)
			}
		}
		return
	case atom.Br:
		w.text.WriteByte('\n')
		return
	case atom.Img:
		return
	case atom.Td, atom.Th:
		w.text.WriteByte(' ')
		w.children(n, depth)
		w.text.WriteByte(' ')
		return
	case atom.Details:
		if w.details(n, depth) {
			return
		}
	case atom.Dl:
		if w.definitions(n, depth) {
			return
		}
	}
	if level, ok := headingLevel[n.DataAtom]; ok {
		w.flushPara()
		text := textOf(n)
		if w.collect != nil {
			w.text.WriteString(text)
			w.flushPara()
			return
		}
		if level == 1 && w.firstH1 == "" {
			w.firstH1 = text
		}
		w.b.heading(level, text)
		return
	}
	if n.DataAtom == atom.Pre {
		w.flushPara()
		w.pre++
		w.children(n, depth)
		w.flushPara()
		w.pre--
		return
	}
	block := blockElements[n.DataAtom] || articleHeader
	if block {
		w.flushPara()
	}
	if n.DataAtom == atom.Li {
		w.text.WriteString("- ")
	}
	content := n.DataAtom == atom.Article || n.DataAtom == atom.Main
	if content {
		w.article++
	}
	w.children(n, depth)
	if content {
		w.article--
	}
	if block {
		w.flushPara()
	}
}

func (w *htmlWalker) children(n *html.Node, depth int) {
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		w.walk(c, depth+1)
	}
}

func (w *htmlWalker) addText(s string) {
	if w.pre > 0 {
		w.text.WriteString(s)
		return
	}
	// Source line breaks are only spacing; <br> and blocks make real ones.
	w.text.WriteString(strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == '\t' || r == '\f' {
			return ' '
		}
		return r
	}, s))
}

// answer reads the nodes as the answer of a FAQ pair.
func (w *htmlWalker) answer(nodes []*html.Node, depth int) []para {
	w.flushPara()
	var paras []para
	saved := w.collect
	w.collect = &paras
	for _, c := range nodes {
		w.walk(c, depth+1)
	}
	w.flushPara()
	w.collect = saved
	return paras
}

// faq emits a pair, or when collecting an answer, folds it into the answer.
func (w *htmlWalker) faq(question string, answer []para) {
	if w.collect != nil {
		*w.collect = append(*w.collect, para{text: cleanText(question)})
		*w.collect = append(*w.collect, answer...)
		return
	}
	w.b.faq(question, answer)
}

// details reads <details><summary>question</summary>answer</details> as
// a FAQ pair; it reports false when the element is not one.
func (w *htmlWalker) details(n *html.Node, depth int) bool {
	var summary *html.Node
	var rest []*html.Node
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if summary == nil && c.Type == html.ElementNode && c.DataAtom == atom.Summary {
			summary = c
			continue
		}
		rest = append(rest, c)
	}
	if summary == nil {
		return false
	}
	q := textOf(summary)
	if q == "" {
		return false
	}
	a := w.answer(rest, depth)
	if len(a) == 0 {
		w.text.WriteString(q)
		w.flushPara()
		return true
	}
	w.faq(q, a)
	return true
}

// definitions reads a <dl> as FAQ pairs: each <dt> (or run of them) is a
// question and the <dd>s after it the answer. It reports false when the
// list has no terms.
func (w *htmlWalker) definitions(n *html.Node, depth int) bool {
	var items []*html.Node
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if c.Type != html.ElementNode || hidden(c) {
			continue
		}
		switch c.DataAtom {
		case atom.Dt, atom.Dd:
			items = append(items, c)
		case atom.Div: // HTML allows a div around each group
			for g := c.FirstChild; g != nil; g = g.NextSibling {
				if g.Type == html.ElementNode && (g.DataAtom == atom.Dt || g.DataAtom == atom.Dd) && !hidden(g) {
					items = append(items, g)
				}
			}
		}
	}
	hasTerm := false
	for _, it := range items {
		if it.DataAtom == atom.Dt {
			hasTerm = true
		}
	}
	if !hasTerm {
		return false
	}
	w.flushPara()
	var q string
	var a []para
	emit := func() {
		switch {
		case q != "" && len(a) > 0:
			w.faq(q, a)
		case q != "":
			w.text.WriteString(q)
			w.flushPara()
		}
		q, a = "", nil
	}
	for _, it := range items {
		if it.DataAtom == atom.Dt {
			if len(a) > 0 {
				emit()
			}
			if t := textOf(it); t != "" {
				q = strings.TrimSpace(q + " " + t)
			}
			continue
		}
		a = append(a, w.answer([]*html.Node{it}, depth)...)
	}
	emit()
	return true
}

// textOf returns the visible text of a subtree on one line. It uses an
// explicit stack so that deep markup cannot exhaust the goroutine's stack.
func textOf(n *html.Node) string {
	var sb strings.Builder
	stack := []*html.Node{n}
	for len(stack) > 0 {
		c := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if c == nil { // the end of a block
			sb.WriteByte(' ')
			continue
		}
		switch c.Type {
		case html.TextNode:
			sb.WriteString(c.Data)
			continue
		case html.ElementNode:
			if c != n && (skippedElements[c.DataAtom] || hidden(c)) {
				continue
			}
			if c.DataAtom == atom.Br || blockElements[c.DataAtom] || c.DataAtom == atom.Td || c.DataAtom == atom.Th {
				sb.WriteByte(' ')
				stack = append(stack, nil)
			}
		case html.DocumentNode:
		default:
			continue
		}
		for k := c.LastChild; k != nil; k = k.PrevSibling {
			stack = append(stack, k)
		}
	}
	return oneLine(sb.String())
}

// htmlTokens reads the visible text of markup the tree parser refused, from
// its tokens alone: no headings or FAQ pairs, block tags end paragraphs.
func htmlTokens(data []byte, opt ChunkOptions) *Parsed {
	b := newBuilder(opt)
	z := html.NewTokenizer(bytes.NewReader(data))
	var text strings.Builder
	var title string
	skip, inTitle := 0, false
	flush := func() {
		b.paragraph(para{text: text.String()})
		text.Reset()
	}
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			break
		}
		tok := z.Token()
		switch tt {
		case html.StartTagToken, html.EndTagToken:
			switch {
			case skippedElements[tok.DataAtom] && tok.DataAtom != atom.Link && tok.DataAtom != atom.Meta:
				if tt == html.StartTagToken {
					skip++
				} else if skip > 0 {
					skip--
				}
			case tok.DataAtom == atom.Title:
				inTitle = tt == html.StartTagToken
			case blockElements[tok.DataAtom] || headingLevel[tok.DataAtom] > 0 || tok.DataAtom == atom.Br:
				flush()
			}
		case html.TextToken:
			switch {
			case inTitle:
				if title == "" {
					title = tok.Data
				}
			case skip == 0:
				text.WriteString(tok.Data)
			}
		}
	}
	flush()
	return &Parsed{Title: title, Chunks: b.result()}
}
