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
// question almost never satisfies. It returns the empty string when text
// has no token, and the caller should then skip the full-text side.
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
		case r < utf8.RuneSelf:
			isWord = 'a' <= r && r <= 'z' || '0' <= r && r <= '9' // text is lower case
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
	switch {
	case r < 0x0e00:
		return false // nothing below Thai is dense
	case 0x4e00 <= r && r <= 0x9fff, 0xac00 <= r && r <= 0xd7a3:
		return true // the common blocks: CJK unified ideographs, Hangul syllables
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

// stem applies a light English stemmer to an ASCII lower-case word: steps
// 1 and 5 of Porter's algorithm, which handle plurals, -ed, -ing, a final y
// and a final e, so "charged", "charging", "charges" and "charge" all
// become "charg", "verified" and "verify" "verifi", "stopped" "stop" and
// "cancelled" "cancel". It leaves other suffixes alone. Words of three letters or fewer, and
// words with anything but a-z, come back unchanged.
func stem(w string) string {
	if len(w) <= 3 || !isASCIILetters(w) {
		return w
	}
	// Step 1a: plurals.
	switch n := len(w); {
	case strings.HasSuffix(w, "sses"):
		w = w[:n-2] // addresses → address
	case strings.HasSuffix(w, "ies"):
		if n > 4 {
			w = w[:n-3] + "y" // policies → policy
		} else {
			w = w[:n-1] // ties → tie
		}
	case strings.HasSuffix(w, "ss"), strings.HasSuffix(w, "us"), strings.HasSuffix(w, "is"):
		// address, status, analysis
	case strings.HasSuffix(w, "s") && !strings.HasSuffix(w, "ews"):
		w = w[:n-1] // cards → card, but news stays
	}
	w = removeEdIng(w)
	// Step 1c: a final y after a vowel-bearing stem is i, so that
	// "verify" meets "verified" ("pay" is too short to change).
	if n := len(w); n > 3 && w[n-1] == 'y' && hasVowel(w[:n-1]) {
		w = w[:n-1] + "i"
	}
	w = dropE(w)
	// Step 5b: a final double l goes in longer words, so British
	// "cancelled" meets "cancel" ("fall" stays).
	if n := len(w); n > 4 && strings.HasSuffix(w, "ll") && measure(w[:n-1]) > 1 {
		w = w[:n-1]
	}
	return w
}

// removeEdIng is Porter's step 1b.
func removeEdIng(w string) string {
	n := len(w)
	switch {
	case strings.HasSuffix(w, "eed"):
		if measure(w[:n-3]) > 0 {
			return w[:n-1] // agreed → agree, but feed stays
		}
		return w
	case strings.HasSuffix(w, "ed") && n-2 >= 3 && hasVowel(w[:n-2]):
		w = w[:n-2]
	case strings.HasSuffix(w, "ing") && n-3 >= 3 && hasVowel(w[:n-3]):
		w = w[:n-3] // but thing, bring and using stay
	default:
		return w
	}
	n = len(w)
	switch {
	case strings.HasSuffix(w, "at"), strings.HasSuffix(w, "bl"), strings.HasSuffix(w, "iz"):
		return w + "e" // activated → activate
	case n >= 2 && w[n-1] == w[n-2] && isConsonant(w, n-1) && w[n-1] != 'l' && w[n-1] != 's' && w[n-1] != 'z':
		return w[:n-1] // stopped → stop
	case measure(w) == 1 && endsCVC(w):
		return w + "e" // hoping → hope
	}
	return w
}

// dropE is Porter's step 5a: a final e goes unless the word is short
// (charge → charg, but hope and fee stay).
func dropE(w string) string {
	n := len(w)
	if n <= 3 || w[n-1] != 'e' {
		return w
	}
	if m := measure(w[:n-1]); m > 1 || m == 1 && !endsCVC(w[:n-1]) {
		return w[:n-1]
	}
	return w
}

// isConsonant reports whether w[i] is a consonant in Porter's sense: y is a
// consonant at the start or after a vowel.
func isConsonant(w string, i int) bool {
	switch w[i] {
	case 'a', 'e', 'i', 'o', 'u':
		return false
	case 'y':
		return i == 0 || !isConsonant(w, i-1)
	}
	return true
}

func hasVowel(w string) bool {
	for i := range len(w) {
		if !isConsonant(w, i) {
			return true
		}
	}
	return false
}

// measure is Porter's m: the number of vowel-consonant sequences in w.
func measure(w string) int {
	m := 0
	prevVowel := false
	for i := range len(w) {
		c := isConsonant(w, i)
		if c && prevVowel {
			m++
		}
		prevVowel = !c
	}
	return m
}

// endsCVC reports whether w ends consonant-vowel-consonant, the last not
// w, x or y (hop, but not snow or box).
func endsCVC(w string) bool {
	n := len(w)
	if n < 3 || !isConsonant(w, n-3) || isConsonant(w, n-2) || !isConsonant(w, n-1) {
		return false
	}
	switch w[n-1] {
	case 'w', 'x', 'y':
		return false
	}
	return true
}

func isASCIILetters(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 'a' || s[i] > 'z' {
			return false
		}
	}
	return true
}
