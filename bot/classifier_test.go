package bot_test

import (
	"fmt"
	"math"
	"sync"
	"testing"

	"github.com/tandem-chat/tandem/bot"
	"github.com/tandem-chat/tandem/internal/errs"
)

// tinyIntents is a small catalog in English and Chinese, the size of a new
// deployment's.
var tinyIntents = map[string][]string{
	"refund": {
		"I want my money back", "how do I get a refund", "refund my order please",
		"can I return this and get refunded", "request a refund for my purchase", "I'd like a refund",
		"我要退款", "怎么申请退款", "退货退款流程是什么", "钱什么时候退回来",
	},
	"shipping": {
		"where is my parcel", "when will my order arrive", "track my package",
		"my delivery is late", "how long does shipping take", "has my order shipped yet",
		"我的快递到哪了", "什么时候发货", "物流信息怎么查", "包裹还没到",
	},
	"password": {
		"I forgot my password", "reset my password", "can't log in to my account",
		"how do I change my password", "password reset link not working", "locked out of my account",
		"忘记密码了", "怎么重置密码", "登录不了账号", "修改登录密码",
	},
	"opening_hours": {
		"what time do you open", "are you open on sunday", "what are your opening hours",
		"when does the store close", "holiday opening times", "are you open today",
		"你们几点开门", "周末营业吗", "营业时间是什么时候", "今天开门吗",
	},
}

func tinyExamples() []bot.Example {
	var ex []bot.Example
	for intent, texts := range tinyIntents {
		for _, t := range texts {
			ex = append(ex, bot.Example{Text: t, Intent: intent})
		}
	}
	return ex
}

func trainTiny(t testing.TB, opt bot.ClassifierOptions) *bot.Classifier {
	t.Helper()
	c, err := bot.TrainClassifier(tinyExamples(), opt)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestTrainClassifier(t *testing.T) {
	t.Run("ErrInvalidNoExamples", func(t *testing.T) {
		if _, err := bot.TrainClassifier(nil, bot.ClassifierOptions{}); !errs.Is(err, errs.Invalid) {
			t.Fatalf("err = %v, want Invalid", err)
		}
	})
	t.Run("ErrInvalidNoIntent", func(t *testing.T) {
		_, err := bot.TrainClassifier([]bot.Example{{Text: "hi", Intent: "greet"}, {Text: "yo", Intent: " "}}, bot.ClassifierOptions{})
		if !errs.Is(err, errs.Invalid) {
			t.Fatalf("err = %v, want Invalid", err)
		}
	})
	t.Run("Intents", func(t *testing.T) {
		ex := append(tinyExamples(), bot.Example{Text: "tell me a joke", Intent: bot.IntentOOS})
		c, err := bot.TrainClassifier(ex, bot.ClassifierOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got := fmt.Sprint(c.Intents())
		if want := "[opening_hours password refund shipping]"; got != want {
			t.Fatalf("Intents() = %s, want %s (sorted, without the out-of-scope class)", got, want)
		}
	})
	t.Run("OneIntent", func(t *testing.T) {
		c, err := bot.TrainClassifier([]bot.Example{{Text: "hello", Intent: "greet"}}, bot.ClassifierOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if p := c.Predict("hello"); p.Intent != "greet" || math.Abs(p.Confidence-1) > 1e-9 {
			t.Fatalf("Predict = %+v, want greet with confidence 1", p)
		}
	})
}

func TestPredict(t *testing.T) {
	c := trainTiny(t, bot.ClassifierOptions{})
	for _, tc := range []struct{ text, want string }{
		{"I would like to get a refund", "refund"},
		{"where's my package?", "shipping"},
		{"I FORGOT MY PASSWORD!!", "password"},
		{"what time are you open on saturday", "opening_hours"},
		{"我想申请退款", "refund"},
		{"快递什么时候到", "shipping"},
		{"密码忘了怎么办", "password"},
		{"几点开门", "opening_hours"},
		{"ＲＥＦＵＮＤ my order", "refund"}, // full-width letters
		// Unknown or empty text is out of scope.
		{"", bot.IntentNone},
		{"zqxv blorf wibble snark", bot.IntentNone},
		{"🙂🙂🙂", bot.IntentNone},
		{"鳄鱼在河里游泳", bot.IntentNone},
	} {
		t.Run(tc.text, func(t *testing.T) {
			p := c.Predict(tc.text)
			if p.Intent != tc.want {
				t.Fatalf("Predict(%q) = %+v, want %s", tc.text, p, tc.want)
			}
			if tc.want != bot.IntentNone && p.Confidence < c.Threshold() {
				t.Fatalf("confidence %.3f below the threshold %.3f", p.Confidence, c.Threshold())
			}
		})
	}
}

func TestPredictRanked(t *testing.T) {
	c := trainTiny(t, bot.ClassifierOptions{})
	p := c.Predict("refund for a late delivery")
	if len(p.Ranked) != 4 {
		t.Fatalf("Ranked has %d intents, want 4", len(p.Ranked))
	}
	sum := 0.0
	for i, s := range p.Ranked {
		sum += s.Score
		if s.Score < 0 || s.Score > 1 || (i > 0 && s.Score > p.Ranked[i-1].Score) {
			t.Fatalf("Ranked not probabilities in decreasing order: %+v", p.Ranked)
		}
	}
	// The rest goes to "none of these".
	if sum > 1+1e-9 || sum < 0.5 {
		t.Fatalf("probabilities sum to %f, want at most 1", sum)
	}
	if p.Confidence != p.Ranked[0].Score {
		t.Fatalf("Confidence %f is not the top score %f", p.Confidence, p.Ranked[0].Score)
	}
	if top := p.Ranked[0].Intent; top != "refund" && top != "shipping" {
		t.Fatalf("top intent %q, want refund or shipping", top)
	}
}

func TestPredictThreshold(t *testing.T) {
	t.Run("Never", func(t *testing.T) {
		c := trainTiny(t, bot.ClassifierOptions{Threshold: -1})
		if p := c.Predict("zqxv blorf wibble"); p.Intent == bot.IntentNone {
			t.Fatalf("with a negative threshold, Predict = %+v, want an intent", p)
		}
	})
	t.Run("Strict", func(t *testing.T) {
		const text = "is the shop open at 8"
		first := trainTiny(t, bot.ClassifierOptions{}).Predict(text)
		if first.Intent != "opening_hours" {
			t.Fatalf("Predict = %+v, want opening_hours", first)
		}
		c := trainTiny(t, bot.ClassifierOptions{Threshold: (1 + first.Confidence) / 2})
		if p := c.Predict(text); p.Intent != bot.IntentNone || p.Confidence != first.Confidence {
			t.Fatalf("with threshold above the confidence, Predict = %+v, want none with confidence %v", p, first.Confidence)
		}
	})
	t.Run("Default", func(t *testing.T) {
		if c := trainTiny(t, bot.ClassifierOptions{}); c.Threshold() != bot.DefaultIntentThreshold {
			t.Fatalf("Threshold() = %v, want %v", c.Threshold(), bot.DefaultIntentThreshold)
		}
	})
}

func TestPredictOutOfScopeClass(t *testing.T) {
	ex := tinyExamples()
	for _, s := range []string{"tell me a joke", "what's the weather like", "who won the football match", "sing me a song", "what is the meaning of life", "recommend a movie"} {
		ex = append(ex, bot.Example{Text: s, Intent: bot.IntentOOS})
	}
	c, err := bot.TrainClassifier(ex, bot.ClassifierOptions{Threshold: -1})
	if err != nil {
		t.Fatal(err)
	}
	if p := c.Predict("tell me a funny joke"); p.Intent != bot.IntentNone {
		t.Fatalf("Predict = %+v, want none: the out-of-scope class wins", p)
	}
	for _, s := range intentNames(c.Predict("tell me a funny joke").Ranked) {
		if s == bot.IntentOOS {
			t.Fatal("Ranked lists the out-of-scope class")
		}
	}
	if p := c.Predict("reset my password please"); p.Intent != "password" {
		t.Fatalf("Predict = %+v, want password", p)
	}
}

func intentNames(r []bot.Scored) []string {
	var out []string
	for _, s := range r {
		out = append(out, s.Intent)
	}
	return out
}

func TestTrainDeterministic(t *testing.T) {
	a := trainTiny(t, bot.ClassifierOptions{Seed: 7})
	b := trainTiny(t, bot.ClassifierOptions{Seed: 7})
	for _, s := range []string{"refund please", "where is it", "密码"} {
		if pa, pb := a.Predict(s), b.Predict(s); fmt.Sprint(pa) != fmt.Sprint(pb) {
			t.Fatalf("same seed, different predictions for %q: %+v vs %+v", s, pa, pb)
		}
	}
}

// TestPredictConcurrent checks, under -race, that Predict is safe for
// concurrent use and gives the same answers as sequential calls.
func TestPredictConcurrent(t *testing.T) {
	c := trainTiny(t, bot.ClassifierOptions{})
	texts := []string{"refund", "where is my parcel", "忘记密码", "open on sunday?", "gibberish xyzzy", ""}
	want := make([]string, len(texts))
	for i, s := range texts {
		want[i] = fmt.Sprint(c.Predict(s))
	}
	var wg sync.WaitGroup
	errc := make(chan string, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				k := (g + i) % len(texts)
				if got := fmt.Sprint(c.Predict(texts[k])); got != want[k] {
					errc <- fmt.Sprintf("Predict(%q) = %s, want %s", texts[k], got, want[k])
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for e := range errc {
		t.Error(e)
	}
}

func BenchmarkPredict(b *testing.B) {
	c := trainTiny(b, bot.ClassifierOptions{})
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		c.Predict("hi, I ordered a jacket last week and it still has not arrived, can I get a refund?")
	}
}
