package retrieval

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Analyze returns the text to index and query with PostgreSQL's 'simple'
// text-search configuration, as in to_tsvector('simple', Analyze(body)).
//
// Words of scripts written with spaces come out NFKC-normalised and
// lower-cased, with a light English suffix stemmer; runs of scripts written
// without spaces (Chinese, Japanese, Korean, Thai and their neighbours)
// come out as overlapping character bigrams, or as the character itself for
// a run of one. Tokens are separated by single spaces and hold only letters,
// marks and digits, so PostgreSQL's parser keeps them whole and none of them
// is a tsquery operator. Analyze("怎么更换绑定的卡 Cards") is
// "怎么 么更 更换 换绑 绑定 定的 的卡 card".
func Analyze(text string) string {
	var b strings.Builder
	b.Grow(len(text) * 2)
	forEachToken(text, func(tok string) {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(tok)
	})
	return b.String()
}

// AnalyzeQuery returns text's distinct tokens, as Analyze makes them, joined
// with " | " for to_tsquery('simple', ...): any token may match.
// plainto_tsquery would instead require every token, which a paraphrased
// question almost never satisfies. It returns "" when text has no token;
// to_tsquery('simple', ”) matches nothing.
func AnalyzeQuery(text string) string {
	var b strings.Builder
	seen := make(map[string]bool)
	forEachToken(text, func(tok string) {
		if seen[tok] {
			return
		}
		seen[tok] = true
		if b.Len() > 0 {
			b.WriteString(" | ")
		}
		b.WriteString(tok)
	})
	return b.String()
}

// forEachToken calls fn with each token of text in order.
func forEachToken(text string, fn func(tok string)) {
	forEachRun(text, func(run string, dense bool) {
		if !dense {
			fn(stem(run))
			return
		}
		_, n := utf8.DecodeRuneInString(run)
		if n == len(run) {
			fn(run)
			return
		}
		// Overlapping bigrams: the window starts at each rune but the last.
		prev, i := 0, n
		for i < len(run) {
			_, m := utf8.DecodeRuneInString(run[i:])
			fn(run[prev : i+m])
			prev = i
			i += m
		}
	})
}

// forEachRun normalises text (NFKC, lower case) and calls fn with each
// maximal run of word characters. dense reports a run of a script written
// without spaces between words, which callers split into character n-grams.
// Combining marks stay with the run they follow; a script change (such as
// Latin letters or digits next to Chinese characters) ends a run.
func forEachRun(text string, fn func(run string, dense bool)) {
	text = normalize(text)
	start := -1
	dense := false
	for i, r := range text {
		var isWord, isDense bool
		switch {
		case unicode.Is(unicode.Mn, r) || unicode.Is(unicode.Mc, r):
			if start >= 0 {
				continue // a mark belongs to the run it follows
			}
		case isDenseScript(r):
			isWord, isDense = true, true
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			isWord = true
		}
		if start >= 0 && (!isWord || isDense != dense) {
			fn(text[start:i], dense)
			start = -1
		}
		if isWord && start < 0 {
			start, dense = i, isDense
		}
	}
	if start >= 0 {
		fn(text[start:], dense)
	}
}

// normalize returns text in NFKC form and lower case, so full-width Latin
// letters and digits, ligatures and compatibility characters match their
// plain forms.
func normalize(text string) string {
	if isASCII(text) {
		return strings.ToLower(text)
	}
	return strings.ToLower(norm.NFKC.String(text))
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// denseScripts are the scripts written without spaces between words (or,
// for Hangul, with spaces between long agglutinated units), where character
// n-grams stand in for words.
var denseScripts = []*unicode.RangeTable{
	unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Hangul,
	unicode.Thai, unicode.Lao, unicode.Khmer, unicode.Myanmar,
}

func isDenseScript(r rune) bool {
	if r < 0x0e00 {
		return false // fast path: nothing below Thai is dense
	}
	if r == 0x30fc { // katakana-hiragana prolonged sound mark, script Common
		return true
	}
	for _, t := range denseScripts {
		if unicode.Is(t, r) {
			return true
		}
	}
	return false
}

// stem applies a light English suffix stemmer to an ASCII lower-case word:
// plurals and the most common verb endings, conservative enough that it
// rarely merges unrelated words ("cards" and "card" meet; "news" stays).
// Other words come back unchanged.
func stem(w string) string {
	n := len(w)
	if n <= 3 || !isASCIILetters(w) {
		return w
	}
	switch {
	case strings.HasSuffix(w, "ies") && n > 4:
		return w[:n-3] + "y" // policies → policy
	case strings.HasSuffix(w, "sses"):
		return w[:n-2] // addresses → address
	case strings.HasSuffix(w, "ss"), strings.HasSuffix(w, "us"), strings.HasSuffix(w, "is"):
		return w // address, status, analysis
	case strings.HasSuffix(w, "s") && !strings.HasSuffix(w, "ews"):
		return w[:n-1] // cards → card, fees → fee, but news stays
	}
	return w
}

func isASCIILetters(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 'a' || s[i] > 'z' {
			return false
		}
	}
	return true
}
