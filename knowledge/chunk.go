package knowledge

import (
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Chunk is one searchable piece of a document.
type Chunk struct {
	Ordinal  int      // 0-based position in the document
	Heading  string   // heading path, e.g. "Shipping > International" ("" when none)
	Question string   // for a FAQ pair: the question (indexed on its own); "" for a passage
	Text     string   // for a FAQ pair: the answer; for a passage: the passage text
	Tags     []string // tags from a CSV/JSON FAQ row (nil otherwise)
}

// Parsed is the result of parsing one document.
type Parsed struct {
	Title  string // from the first H1 / <title> / PDF metadata; "" when none
	Chunks []Chunk
}

// ChunkOptions bound the size of passages. FAQ pairs are never split.
type ChunkOptions struct {
	// MaxRunes is the most runes a passage may hold; 0 means 800.
	MaxRunes int
	// OverlapRunes is how much of the end of a passage is repeated at the
	// start of the next when a long paragraph is split; 0 means 100 and a
	// negative value means none. It is capped below half of MaxRunes.
	OverlapRunes int
}

// Default chunk sizes: a passage of about a screen paragraph or two, which
// embeds well and still reads as a quote.
const (
	DefaultMaxRunes     = 800
	DefaultOverlapRunes = 100
)

const (
	headingSep      = " > "
	maxHeadingRunes = 200 // per heading level; a runaway heading would be copied into every chunk
	maxTitleRunes   = 300
)

// normalized returns the options with defaults filled in and the overlap
// small enough that every piece of a split paragraph makes progress.
func (o ChunkOptions) normalized() ChunkOptions {
	if o.MaxRunes <= 0 {
		o.MaxRunes = DefaultMaxRunes
	}
	// A negative overlap stays negative, so that normalising twice keeps
	// meaning "none".
	if o.OverlapRunes == 0 {
		o.OverlapRunes = DefaultOverlapRunes
	}
	if limit := o.MaxRunes/2 - 1; o.OverlapRunes > limit {
		o.OverlapRunes = limit
		if limit <= 0 {
			o.OverlapRunes = -1
		}
	}
	return o
}

// para is one block of text: a paragraph, a list, a table or a code block.
type para struct {
	text string
	pre  bool // keep line breaks and indentation (code, preformatted text)
	// boldQuestion marks a paragraph that is wholly emphasised and ends in a
	// question mark, the usual way to write a FAQ without headings.
	boldQuestion bool
}

// heading is one level of a document's outline.
type heading struct {
	level int
	text  string
}

// builder turns a stream of headings, paragraphs and FAQ pairs into chunks.
// Parsers of Markdown, text, HTML and PDF all feed one.
type builder struct {
	opt    ChunkOptions
	path   []heading // current heading stack
	paras  []para    // paragraphs of the current section, not yet chunked
	chunks []pendingChunk
	h1s    int // number of level-1 headings seen
}

type pendingChunk struct {
	path     []heading
	question string
	text     string
	tags     []string
}

func newBuilder(opt ChunkOptions) *builder { return &builder{opt: opt.normalized()} }

// heading closes the current section and opens one at the given level.
func (b *builder) heading(level int, text string) {
	b.flush()
	text = truncateRunes(oneLine(text), maxHeadingRunes)
	for len(b.path) > 0 && b.path[len(b.path)-1].level >= level {
		b.path = b.path[:len(b.path)-1]
	}
	if text == "" {
		return
	}
	if level == 1 {
		b.h1s++
	}
	b.path = append(b.path, heading{level, text})
}

// paragraph adds a block of text to the current section.
func (b *builder) paragraph(p para) {
	if p.pre {
		p.text = cleanPre(p.text)
	} else {
		p.text = cleanText(p.text)
	}
	if p.text != "" {
		b.paras = append(b.paras, p)
	}
}

// faq adds a question and its answer, kept whole in one chunk.
func (b *builder) faq(question string, answer []para) {
	b.flush()
	b.addFAQ(b.path, question, answer)
}

func (b *builder) addFAQ(path []heading, question string, answer []para) {
	q := oneLine(question)
	a := joinParas(answer)
	if q == "" || a == "" {
		return
	}
	b.chunks = append(b.chunks, pendingChunk{path: path, question: q, text: a})
}

// flush chunks the paragraphs of the current section. A section whose
// heading is a question and whose body is short is one FAQ pair; otherwise
// paragraphs are scanned for inline FAQ pairs ("Q: … A: …") and the rest is
// packed into passages.
func (b *builder) flush() {
	paras := b.paras
	b.paras = nil
	if len(paras) == 0 {
		return
	}
	if n := len(b.path); n > 0 && isQuestion(b.path[n-1].text) && parasRunes(paras) <= 2*b.opt.MaxRunes && !hasInlineFAQ(paras) {
		b.addFAQ(b.path[:n-1], b.path[n-1].text, paras)
		return
	}
	var run []para
	for i := 0; i < len(paras); {
		q, answer, next, ok := inlineFAQ(paras, i)
		if !ok {
			run = append(run, paras[i])
			i++
			continue
		}
		b.passages(run)
		run = nil
		b.addFAQ(b.path, q, answer)
		i = next
	}
	b.passages(run)
}

// passages packs paragraphs into passages of at most MaxRunes, splitting a
// paragraph that is longer on its own.
func (b *builder) passages(paras []para) {
	limit := b.opt.MaxRunes
	var cur strings.Builder
	curRunes := 0
	path := slices.Clone(b.path)
	emit := func() {
		if cur.Len() > 0 {
			b.chunks = append(b.chunks, pendingChunk{path: path, text: cur.String()})
			cur.Reset()
			curRunes = 0
		}
	}
	for _, p := range paras {
		n := utf8.RuneCountInString(p.text)
		if n > limit {
			emit()
			for _, piece := range splitLong(p.text, p.pre, b.opt) {
				b.chunks = append(b.chunks, pendingChunk{path: path, text: piece})
			}
			continue
		}
		if curRunes > 0 && curRunes+2+n > limit {
			emit()
		}
		if curRunes > 0 {
			cur.WriteString("\n\n")
			curRunes += 2
		}
		cur.WriteString(p.text)
		curRunes += n
	}
	emit()
}

// result closes the last section and returns the chunks. When a document
// has a single level-1 heading it is the document's title, so it is left
// out of the heading paths.
func (b *builder) result() []Chunk {
	b.flush()
	out := make([]Chunk, 0, len(b.chunks))
	for _, c := range b.chunks {
		var names []string
		for _, h := range c.path {
			if h.level == 1 && b.h1s == 1 {
				continue
			}
			names = append(names, h.text)
		}
		out = append(out, Chunk{
			Heading:  strings.Join(names, headingSep),
			Question: c.question,
			Text:     c.text,
			Tags:     c.tags,
		})
	}
	return out
}

// splitLong splits one paragraph longer than MaxRunes into pieces of at
// most MaxRunes, on sentence boundaries (lines for preformatted text) where
// it can, carrying the last OverlapRunes of each piece into the next.
func splitLong(text string, pre bool, opt ChunkOptions) []string {
	limit, overlap := opt.MaxRunes, max(opt.OverlapRunes, 0)
	// Every unit must fit in a piece after the overlap and a separator.
	unitMax := limit - overlap - 1
	if unitMax < 1 {
		unitMax, overlap = limit, 0
	}
	var units []string
	var raw []string
	if pre {
		raw = strings.Split(text, "\n")
	} else {
		raw = sentences(text)
	}
	for _, u := range raw {
		units = append(units, splitRunes(u, unitMax)...)
	}

	var pieces []string
	cur, curRunes := "", 0
	for _, u := range units {
		n := utf8.RuneCountInString(u)
		if cur == "" {
			cur, curRunes = u, n
			continue
		}
		sep := joiner(cur, u, pre)
		if curRunes+len(sep)+n <= limit {
			cur += sep + u
			curRunes += len(sep) + n
			continue
		}
		pieces = append(pieces, cur)
		tail := overlapTail(cur, overlap, pre)
		if tail == "" {
			cur, curRunes = u, n
			continue
		}
		sep = joiner(tail, u, pre)
		cur = tail + sep + u
		curRunes = utf8.RuneCountInString(cur)
	}
	if cur != "" {
		pieces = append(pieces, cur)
	}
	return pieces
}

// joiner is what goes between two pieces of running text: a line break in
// preformatted text, nothing between Chinese or Japanese characters, and a
// space otherwise.
func joiner(a, b string, pre bool) string {
	if pre {
		return "\n"
	}
	last, _ := utf8.DecodeLastRuneInString(a)
	first, _ := utf8.DecodeRuneInString(b)
	if isCJK(last) || isCJK(first) {
		return ""
	}
	return " "
}

// overlapTail returns the end of s to repeat at the start of the next piece:
// at most n runes, starting at a sentence (or line) start when there is one
// in that window, else at a word start.
func overlapTail(s string, n int, pre bool) string {
	if n <= 0 {
		return ""
	}
	trim := strings.TrimSpace
	if pre { // keep the indentation of code
		trim = func(s string) string { return strings.Trim(s, "\n") }
	}
	rs := []rune(s)
	if len(rs) <= n {
		return trim(s)
	}
	from := len(rs) - n
	// The first boundary at or after from that leaves something to repeat.
	for k := from; k < len(rs)-1; k++ {
		if pre && rs[k-1] == '\n' || !pre && sentenceEndsAt(rs, k) {
			if t := trim(string(rs[k:])); strings.TrimSpace(t) != "" {
				return t
			}
		}
	}
	for k := from; k < len(rs)-1; k++ {
		if unicode.IsSpace(rs[k-1]) {
			if t := strings.TrimSpace(string(rs[k:])); t != "" {
				return t
			}
		}
	}
	return strings.TrimSpace(string(rs[from:]))
}

// sentenceEndsAt reports whether a sentence ends right before rs[k]: after
// 。！？… (and any closing quotes), after . ! ? followed by a space, or at a
// line break.
func sentenceEndsAt(rs []rune, k int) bool {
	i := k - 1
	if i < 0 {
		return false
	}
	if rs[i] == '\n' {
		return true
	}
	for i >= 0 && isClosing(rs[i]) {
		i--
	}
	if i < 0 {
		return false
	}
	switch rs[i] {
	case '。', '！', '？', '…':
		return true
	case '.', '!', '?':
		return k == len(rs) || unicode.IsSpace(rs[k])
	}
	return false
}

// sentences splits running text after sentence-ending punctuation: 。！？…
// (with any closing quotes) anywhere, . ! ? when a space follows, and at
// line breaks.
func sentences(text string) []string {
	var out []string
	rs := []rune(text)
	start := 0
	for k := 1; k <= len(rs); k++ {
		if k < len(rs) && (isClosing(rs[k]) || isSentencePunct(rs[k])) {
			continue // the sentence goes on to the end of "?!" or "。」"
		}
		if k == len(rs) || sentenceEndsAt(rs, k) {
			if s := strings.TrimSpace(string(rs[start:k])); s != "" {
				out = append(out, s)
			}
			start = k
		}
	}
	return out
}

func isSentencePunct(r rune) bool {
	switch r {
	case '。', '！', '？', '…', '.', '!', '?':
		return true
	}
	return false
}

func isClosing(r rune) bool {
	switch r {
	case '"', '\'', ')', ']', '”', '’', '」', '』', '）', '】', '》', '〉':
		return true
	}
	return false
}

// splitRunes cuts s into pieces of at most n runes, preferring to cut after
// a space or a comma in the second half of a piece.
func splitRunes(s string, n int) []string {
	rs := []rune(s)
	if len(rs) <= n {
		return []string{s}
	}
	var out []string
	for len(rs) > n {
		cut := n
		for i := n; i > n/2; i-- {
			if isSoftBreak(rs[i-1]) {
				cut = i
				break
			}
		}
		if p := strings.TrimSpace(string(rs[:cut])); p != "" {
			out = append(out, p)
		}
		rs = rs[cut:]
	}
	if p := strings.TrimSpace(string(rs)); p != "" {
		out = append(out, p)
	}
	return out
}

func isSoftBreak(r rune) bool {
	switch r {
	case ',', ';', ':', '，', '、', '；', '：':
		return true
	}
	return unicode.IsSpace(r)
}

// isCJK reports whether r is written without spaces between words.
func isCJK(r rune) bool {
	return unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana) ||
		r >= 0x3000 && r <= 0x303F || // CJK punctuation
		r >= 0xFF00 && r <= 0xFFEF // full-width forms
}

func isQuestion(s string) bool {
	s = strings.TrimSpace(s)
	return strings.HasSuffix(s, "?") || strings.HasSuffix(s, "？")
}

func parasRunes(ps []para) int {
	n := 0
	for _, p := range ps {
		n += utf8.RuneCountInString(p.text) + 2
	}
	return n
}

func joinParas(ps []para) string {
	var texts []string
	for _, p := range ps {
		if t := strings.TrimSpace(p.text); t != "" {
			texts = append(texts, t)
		}
	}
	return strings.Join(texts, "\n\n")
}

// truncateRunes shortens s to at most n runes, marking the cut.
func truncateRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	rs := []rune(s)
	return strings.TrimSpace(string(rs[:n-1])) + "…"
}
