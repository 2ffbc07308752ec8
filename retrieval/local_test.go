package retrieval

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
)

func embedOne(t testing.TB, e Embedder, text string) []float32 {
	t.Helper()
	vs, err := e.Embed(context.Background(), []string{text})
	if err != nil {
		t.Fatal(err)
	}
	return vs[0]
}

func TestLocal(t *testing.T) {
	e := NewLocal()
	if e.Name() != "local-hash-v1" || e.Dim() != 1024 {
		t.Fatalf("name %q dim %d", e.Name(), e.Dim())
	}

	t.Run("UnitAndDeterministic", func(t *testing.T) {
		for _, text := range []string{"How do I reset my password?", "怎么更换绑定的卡", "a", "", "?!", strings.Repeat("long text ", 500)} {
			v := embedOne(t, e, text)
			if len(v) != e.Dim() {
				t.Fatalf("%q: len %d", text, len(v))
			}
			var ss float64
			for _, x := range v {
				ss += float64(x) * float64(x)
			}
			if math.Abs(ss-1) > 1e-4 {
				t.Errorf("%q: squared norm %v, want 1", text, ss)
			}
			if w := embedOne(t, NewLocal(), text); Cosine(v, w) < 0.99999 {
				t.Errorf("%q: two embeddings differ", text)
			}
		}
	})

	t.Run("NoWords", func(t *testing.T) {
		a, b := embedOne(t, e, ""), embedOne(t, e, " …?! ")
		if Cosine(a, b) < 0.99999 {
			t.Error("texts without words should share one vector")
		}
		if c := Cosine(a, embedOne(t, e, "card")); math.Abs(float64(c)) > 0.2 {
			t.Errorf("empty vs a word: cosine %v, want about 0", c)
		}
	})

	t.Run("Normalisation", func(t *testing.T) {
		pairs := [][2]string{
			{"Reset PASSWORD", "reset password"},
			{"ＰＩＮ　ｃｏｄｅ", "pin code"},
			{"Lost cards", "lost card"},
		}
		for _, p := range pairs {
			if c := Cosine(embedOne(t, e, p[0]), embedOne(t, e, p[1])); c < 0.9 {
				t.Errorf("cosine(%q, %q) = %v, want near 1", p[0], p[1], c)
			}
		}
	})

	// Closer texts must score higher: a typo, an inflection, and Chinese
	// sharing characters but not segmentation.
	t.Run("Ranking", func(t *testing.T) {
		tests := []struct{ query, near, far string }{
			{"how do I reset my pasword", "reset your password in settings", "how do I order a new card"},
			{"my card was stolen", "report a stolen card", "my transfer was declined"},
			{"refunding a payment", "payment refunds", "making a payment"},
			{"my transfer was cancelled", "why was my transfer canceled", "my transfer arrived"},
			{"怎么更换还款银行卡", "如何更改还款的卡", "借款多久到账"},
			{"为什么借款失败", "借款失败是什么原因", "怎么借款"},
			{"Wi-Fi 密码是多少", "wifi密码", "打印机怎么用"},
		}
		for _, tt := range tests {
			q := embedOne(t, e, tt.query)
			near, far := Cosine(q, embedOne(t, e, tt.near)), Cosine(q, embedOne(t, e, tt.far))
			if near <= far {
				t.Errorf("%q: near %q scores %.3f, far %q scores %.3f", tt.query, tt.near, near, tt.far, far)
			}
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		want := embedOne(t, e, "concurrent 并发 test")
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range 50 {
					vs, _ := e.Embed(context.Background(), []string{"concurrent 并发 test", "other text"})
					if Cosine(vs[0], want) < 0.99999 {
						t.Error("concurrent embedding differs")
						return
					}
				}
			})
		}
		wg.Wait()
	})

	t.Run("ErrCanceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := e.Embed(ctx, []string{"a"}); !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
	})
}

// FuzzLocal checks that any text embeds to a finite unit vector.
func FuzzLocal(f *testing.F) {
	for _, s := range []string{"", "hello world", "怎么更换绑定的卡", "\xff\xfe", "a\u0301", strings.Repeat("x", 200)} {
		f.Add(s)
	}
	e := NewLocal()
	f.Fuzz(func(t *testing.T, s string) {
		v := e.embed(s)
		var ss float64
		for _, x := range v {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				t.Fatalf("%q: non-finite component", s)
			}
			ss += float64(x) * float64(x)
		}
		if math.Abs(ss-1) > 1e-4 {
			t.Fatalf("%q: squared norm %v", s, ss)
		}
	})
}

var benchTexts = map[string]string{
	"EnglishQuestion": "I still have not received my new card, I ordered it over a week ago.",
	"ChineseQuestion": "你好，我想问一下还款银行卡怎么更换？",
	"EnglishPassage": strings.Repeat("Your new card usually arrives within five to seven working days. "+
		"If it has not arrived after ten days, you can order a replacement from the Cards tab in the app. ", 4),
	"ChinesePassage": strings.Repeat("借款成功后，资金一般会在几分钟内到账，遇到银行系统繁忙时可能会有延迟。"+
		"如果超过两个小时仍未到账，请联系客服并提供借款时间和收款银行卡尾号。", 3),
}

// BenchmarkLocalEmbed measures one text per call.
func BenchmarkLocalEmbed(b *testing.B) {
	e := NewLocal()
	for _, name := range []string{"EnglishQuestion", "ChineseQuestion", "EnglishPassage", "ChinesePassage"} {
		text := benchTexts[name]
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(text)))
			for b.Loop() {
				e.embed(text)
			}
		})
	}
}

func BenchmarkAnalyze(b *testing.B) {
	for _, name := range []string{"EnglishPassage", "ChinesePassage"} {
		text := benchTexts[name]
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(text)))
			for b.Loop() {
				Analyze(text)
			}
		})
	}
}
