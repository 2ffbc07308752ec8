package bot

import (
	"fmt"
	"math"
	"testing"
)

func TestTokenize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // tokens joined by |, CJK runs marked with *
	}{
		{"Hello, World!", "hello|world"},
		{"I don't know", "i|don't|know"},
		{"it’s 'quoted'", "it's|quoted"},
		{"ＡＢＣ１２３", "abc123"},
		{"我的订单在哪里？", "*我的订单在哪里"},
		{"iPhone手机坏了 help", "iphone|*手机坏了|help"},
		{"café naïve", "café|naïve"},
		{"  ", ""},
		{"--- !!! ???", ""},
		{"e-mail", "e|mail"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got := ""
			for i, tok := range tokenize(tc.in) {
				if i > 0 {
					got += "|"
				}
				if tok.cjk {
					got += "*"
				}
				got += string(tok.runes)
			}
			if got != tc.want {
				t.Fatalf("tokenize(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestNgramKeys(t *testing.T) {
	cfg := featureConfig{wordMaxN: 2, charMinN: 2, charMaxN: 5}
	words, chars := cfg.ngramKeys("ab cd", nil, nil)
	// Words: ab, cd, "ab cd". Characters of " ab " and " cd ": 3 bigrams,
	// 2 trigrams, 1 four-gram each.
	if len(words) != 3 || len(chars) != 12 {
		t.Fatalf("got %d word and %d character n-grams, want 3 and 12", len(words), len(chars))
	}
	// A CJK run gives one word per character and character n-grams over
	// the run: 我们 is 2 words + 1 bigram, and " 我们 " has 3+2+1 n-grams.
	words, chars = cfg.ngramKeys("我们", nil, nil)
	if len(words) != 3 || len(chars) != 6 {
		t.Fatalf("got %d word and %d character n-grams, want 3 and 6", len(words), len(chars))
	}
	// The same n-gram hashes the same in any text, and word and character
	// n-grams never share a key.
	w1, c1 := cfg.ngramKeys("refund", nil, nil)
	w2, c2 := cfg.ngramKeys("my refund", nil, nil)
	if !contains(w2, w1[0]) || !contains(c2, c1[0]) {
		t.Fatal("n-gram keys depend on context")
	}
	for _, k := range w2 {
		if contains(c2, k) {
			t.Fatal("a word key equals a character key")
		}
	}
}

func contains(keys []uint64, k uint64) bool {
	for _, x := range keys {
		if x == k {
			return true
		}
	}
	return false
}

func blockNorms(f *featurizer, text string) float64 {
	v := f.vector(text)
	var ss float64
	for _, x := range v.val {
		ss += float64(x) * float64(x)
	}
	return math.Sqrt(ss)
}

func TestVector(t *testing.T) {
	f := newFeaturizer(defaultFeatures, []string{"where is my order", "cancel my order", "我的订单在哪里"})
	full := math.Hypot(defaultFeatures.wordWeight, defaultFeatures.charWeight)
	for _, tc := range []struct {
		text     string
		min, max float64
	}{
		{"where is my order", full - 1e-4, full + 1e-4}, // every n-gram known
		{"cancel my order", full - 1e-4, full + 1e-4},
		{"我的订单在哪里", full - 1e-4, full + 1e-4},
		{"where is my parcel", 0.3, full - 0.1}, // partly unknown: shorter
		{"xyzzy plugh", 0, 0.5},
		{"", 0, 0},
	} {
		if n := blockNorms(f, tc.text); n < tc.min || n > tc.max {
			t.Errorf("|vector(%q)| = %.3f, want in [%.3f, %.3f]", tc.text, n, tc.min, tc.max)
		}
	}
	if f.dim() == 0 || len(f.index) != f.dim() {
		t.Fatalf("dim %d, index %d", f.dim(), len(f.index))
	}
}

// FuzzVector checks that any text gives a well-formed vector.
func FuzzVector(f *testing.F) {
	feat := newFeaturizer(defaultFeatures, []string{"where is my order", "退款怎么申请", "reset password"})
	for _, s := range []string{"", "where is my order?", "退款", "\xff\xfe", "a'''b", "'", "ＡＢＣ", "\u0301\u0301"} {
		f.Add(s)
	}
	full := math.Hypot(defaultFeatures.wordWeight, defaultFeatures.charWeight)
	f.Fuzz(func(t *testing.T, s string) {
		v := feat.vector(s)
		if len(v.idx) != len(v.val) {
			t.Fatal("idx and val lengths differ")
		}
		var ss float64
		for i, x := range v.val {
			if int(v.idx[i]) < 0 || int(v.idx[i]) >= feat.dim() {
				t.Fatalf("column %d out of range", v.idx[i])
			}
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) || x <= 0 {
				t.Fatalf("bad value %v", x)
			}
			ss += float64(x) * float64(x)
		}
		if n := math.Sqrt(ss); n > full+1e-4 {
			t.Fatalf("norm %f above %f", n, full)
		}
		_ = fmt.Sprint(tokenize(s))
	})
}
