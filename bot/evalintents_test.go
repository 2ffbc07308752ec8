package bot_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/tandem-chat/tandem/bot"
	"github.com/tandem-chat/tandem/internal/errs"
)

func TestLoadExamplesJSONL(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		in := `{"text": "where is my card?", "intent": "card_arrival"}

{"text": "play some jazz", "intent": "play_music", "is_oos": true}
{"text": "what's 2+2", "intent": "oos", "domain": "x"}
{"text": "asdf", "intent": "NO_NODES_DETECTED", "is_oos": false}
  {"text": "退款", "intent": " refund "}  ` + "\r\n"
		got, err := bot.LoadExamplesJSONL(strings.NewReader(in))
		if err != nil {
			t.Fatal(err)
		}
		want := []bot.Example{
			{Text: "where is my card?", Intent: "card_arrival"},
			{Text: "play some jazz", Intent: bot.IntentOOS},
			{Text: "what's 2+2", Intent: bot.IntentOOS},
			{Text: "asdf", Intent: bot.IntentOOS},
			{Text: "退款", Intent: "refund"},
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("got %v, want %v", got, want)
		}
	})
	t.Run("Empty", func(t *testing.T) {
		got, err := bot.LoadExamplesJSONL(strings.NewReader(""))
		if err != nil || len(got) != 0 {
			t.Fatalf("got %v, %v; want nothing", got, err)
		}
	})
	for _, tc := range []struct {
		name, in, want string
	}{
		{"ErrInvalidJSON", "{\"text\": \"a\", \"intent\": \"b\"}\n\n{\"text\": \"oops\", \"intent\": }\n", "line 3"},
		{"ErrInvalidNotObject", `["a", "b"]`, "line 1"},
		{"ErrInvalidNoText", `{"intent": "b"}`, `line 1: missing "text"`},
		{"ErrInvalidNoIntent", "{\"text\": \"a\", \"intent\": \"b\"}\n{\"text\": \"a\"}", `line 2: missing "intent"`},
		{"ErrInvalidTextType", `{"text": 3, "intent": "b"}`, "line 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := bot.LoadExamplesJSONL(strings.NewReader(tc.in))
			if !errs.Is(err, errs.Invalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want Invalid mentioning %q", err, tc.want)
			}
		})
	}
}

// FuzzLoadExamplesJSONL checks that any input gives examples or an Invalid
// error, never a panic.
func FuzzLoadExamplesJSONL(f *testing.F) {
	f.Add(`{"text": "a", "intent": "b"}` + "\n" + `{"text": "c", "intent": "oos", "is_oos": true}`)
	f.Add(`{"text": "a"`)
	f.Add("\n\n\r\n")
	f.Fuzz(func(t *testing.T, in string) {
		ex, err := bot.LoadExamplesJSONL(strings.NewReader(in))
		if err != nil {
			if !errs.Is(err, errs.Invalid) {
				t.Fatalf("err = %v, want Invalid", err)
			}
			return
		}
		for _, e := range ex {
			if strings.TrimSpace(e.Intent) == "" {
				t.Fatalf("example without intent: %+v", e)
			}
		}
	})
}

func TestEvalIntents(t *testing.T) {
	train := tinyExamples()
	test := []bot.Example{
		{Text: "I need a refund", Intent: "refund"},
		{Text: "where is my parcel now", Intent: "shipping"},
		{Text: "忘记密码怎么办", Intent: "password"},
		{Text: "are you open on monday", Intent: "opening_hours"},
		{Text: "zqxv blorf wibble", Intent: bot.IntentOOS},
		{Text: "the crocodile swims", Intent: bot.IntentOOS},
	}
	t.Run("TestSplit", func(t *testing.T) {
		r := bot.EvalIntents(train, test, bot.ClassifierOptions{})
		if r.N != 6 || r.OutOfScope != 2 || r.Intents != 4 || r.Threshold != bot.DefaultIntentThreshold {
			t.Fatalf("report %+v", r)
		}
		if r.Accuracy != 1 || r.InScopeAccuracy != 1 || r.OOSRecall != 1 || r.OOSPrecision != 1 {
			t.Fatalf("want a perfect score on easy examples: %+v", r)
		}
		if len(r.Curve) != 21 || r.Curve[0].Threshold != 0 || r.Curve[20].Threshold != 1 {
			t.Fatalf("curve %+v", r.Curve)
		}
		// At threshold 0 everything is answered; at 1 nothing.
		if c := r.Curve[0]; c.Answered != 1 || c.OOSRecall != 0 || c.Correct != 4.0/6 {
			t.Fatalf("curve at 0: %+v", c)
		}
		if c := r.Curve[20]; c.Answered != 0 || c.OOSRecall != 1 {
			t.Fatalf("curve at 1: %+v", c)
		}
		if r.Tuned.Accuracy != 1 {
			t.Fatalf("tuned %+v", r.Tuned)
		}
		var b bytes.Buffer
		r.Format(&b)
		for _, want := range []string{"6 test examples (2 out of scope), 4 intents", "at threshold 0.50: accuracy 1.000", "out-of-scope precision 1.000, recall 1.000", "threshold  answered", "     0.50  "} {
			if !strings.Contains(b.String(), want) {
				t.Fatalf("Format lacks %q:\n%s", want, b.String())
			}
		}
	})
	t.Run("Threshold", func(t *testing.T) {
		r := bot.EvalIntents(train, test, bot.ClassifierOptions{Threshold: 0.999999})
		if r.Threshold != 0.999999 || r.Accuracy != 2.0/6 {
			t.Fatalf("report %+v", r)
		}
	})
	t.Run("CrossValidation", func(t *testing.T) {
		r := bot.EvalIntents(train, nil, bot.ClassifierOptions{})
		if r.N != len(train) || r.OutOfScope != 0 || r.Intents != 4 {
			t.Fatalf("report %+v", r)
		}
		if r.Top1Accuracy < 0.6 {
			t.Fatalf("cross-validated accuracy %.3f on an easy set", r.Top1Accuracy)
		}
		var b bytes.Buffer
		r.Format(&b)
		if strings.Contains(b.String(), "out-of-scope") {
			t.Fatalf("Format mentions out-of-scope figures with no such examples:\n%s", b.String())
		}
	})
	t.Run("NoTraining", func(t *testing.T) {
		if r := bot.EvalIntents(nil, test, bot.ClassifierOptions{}); r.N != 0 {
			t.Fatalf("report %+v, want N 0", r)
		}
	})
}

// The data-driven tests below read the public data sets described in
// ../../shared/data/README.md and skip when they are absent. Under -race or
// -short they run on small samples, with floors to match; otherwise on the
// full splits, with floors a little under the measured figures.

const intentDataDir = "../../shared/data"

func loadIntentData(t testing.TB, name string) []bot.Example {
	t.Helper()
	f, err := os.Open(filepath.Join(intentDataDir, name))
	if err != nil {
		t.Skipf("public data not available: %v", err)
	}
	defer f.Close()
	ex, err := bot.LoadExamplesJSONL(f)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return ex
}

// lightDataTests reports whether the data tests should run on samples only.
func lightDataTests() bool {
	if testing.Short() {
		return true
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "-race" && s.Value == "true" {
				return true
			}
		}
	}
	return false
}

// firstIntents returns the first n in-scope intents met in ex.
func firstIntents(ex []bot.Example, n int) map[string]bool {
	keep := map[string]bool{}
	for _, e := range ex {
		if len(keep) < n && e.Intent != bot.IntentOOS {
			keep[e.Intent] = true
		}
	}
	return keep
}

// onlyIntents keeps the examples of the given intents, and the out-of-scope
// ones when oos is true.
func onlyIntents(ex []bot.Example, keep map[string]bool, oos bool) []bot.Example {
	var out []bot.Example
	for _, e := range ex {
		if keep[e.Intent] || (oos && e.Intent == bot.IntentOOS) {
			out = append(out, e)
		}
	}
	return out
}

// openSetFolds makes a 5-fold split of examples in which each fold also
// leaves a fifth of the intents out of training altogether; their test
// examples are relabelled out of scope. It measures out-of-scope detection
// on data that has no out-of-scope examples, with in-domain "unknown"
// intents, which are harder to tell apart than chit-chat.
func openSetFolds(ex []bot.Example) (trains, tests [][]bot.Example) {
	var intents []string
	pos := map[string]int{}
	for _, e := range ex {
		if _, ok := pos[e.Intent]; !ok {
			pos[e.Intent] = 0
			intents = append(intents, e.Intent)
		}
	}
	sort.Strings(intents)
	left := map[string]int{}
	for i, n := range intents {
		left[n] = (i * 3) % 5 // spread, not alphabetical runs
	}
	trains, tests = make([][]bot.Example, 5), make([][]bot.Example, 5)
	for _, e := range ex {
		fold := pos[e.Intent] % 5
		pos[e.Intent]++
		for f := range 5 {
			switch {
			case f == fold && left[e.Intent] == f:
				tests[f] = append(tests[f], bot.Example{Text: e.Text, Intent: bot.IntentOOS})
			case f == fold:
				tests[f] = append(tests[f], e)
			case left[e.Intent] != f:
				trains[f] = append(trains[f], e)
			}
		}
	}
	return trains, tests
}

// splitOutOfScope separates in-scope from out-of-scope examples.
func splitOutOfScope(ex []bot.Example) (in, oos []bot.Example) {
	for _, e := range ex {
		if e.Intent == bot.IntentOOS {
			oos = append(oos, e)
		} else {
			in = append(in, e)
		}
	}
	return in, oos
}

func logIntentReport(t *testing.T, r bot.IntentReport) {
	t.Helper()
	var b bytes.Buffer
	r.Format(&b)
	t.Logf("\n%s", b.String())
}

func atLeastFloor(t *testing.T, what string, got, floor float64) {
	t.Helper()
	if got < floor {
		t.Errorf("%s = %.4f, below the floor %.4f", what, got, floor)
	}
}

// TestEvalBanking77 measures intent accuracy on banking questions (77
// intents, no out-of-scope examples). Light: 20 intents.
func TestEvalBanking77(t *testing.T) {
	train, test := loadIntentData(t, "banking77/train.jsonl"), loadIntentData(t, "banking77/test.jsonl")
	floor := 0.915
	if lightDataTests() {
		keep := firstIntents(train, 20)
		train, test, floor = onlyIntents(train, keep, false), onlyIntents(test, keep, false), 0.9
	}
	r := bot.EvalIntents(train, test, bot.ClassifierOptions{Seed: 1})
	logIntentReport(t, r)
	atLeastFloor(t, "top-1 accuracy", r.Top1Accuracy, floor)
}

// TestEvalCLINC150 measures in-scope accuracy and out-of-scope recall on
// CLINC150 validation (150 intents and an out-of-scope class in training).
// Light: 20 intents and the out-of-scope examples.
func TestEvalCLINC150(t *testing.T) {
	train, val := loadIntentData(t, "clinc150/train.jsonl"), loadIntentData(t, "clinc150/val.jsonl")
	inScope, recall := 0.905, 0.75
	if lightDataTests() {
		keep := firstIntents(train, 20)
		train, val, inScope, recall = onlyIntents(train, keep, true), onlyIntents(val, keep, true), 0.9, 0.75
	}
	r := bot.EvalIntents(train, val, bot.ClassifierOptions{Seed: 1})
	logIntentReport(t, r)
	atLeastFloor(t, "in-scope accuracy", r.InScopeAccuracy, inScope)
	atLeastFloor(t, "out-of-scope recall", r.OOSRecall, recall)
	if !lightDataTests() {
		// With the threshold chosen on validation.
		atLeastFloor(t, "tuned in-scope accuracy", r.Tuned.InScopeAccuracy, 0.92)
		atLeastFloor(t, "tuned out-of-scope recall", r.Tuned.OOSRecall, 0.6)
	}
}

// TestEvalHINT3 measures the three HINT3 catalogs: few examples per intent,
// as in a real deployment. The published test sets are not in the data, so
// these are 5-fold cross-validations of the training sets: in scope only,
// and "open set", where each fold also leaves a fifth of the intents out of
// training and their examples must be answered none. Light: one catalog,
// one fold of each.
func TestEvalHINT3(t *testing.T) {
	for _, tc := range []struct {
		name                   string
		top1, openAcc, openOOS float64
	}{
		{"curekart", 0.85, 0.75, 0.65},
		{"powerplay11", 0.84, 0.77, 0.75},
		{"sofmattress", 0.84, 0.73, 0.68},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ex := loadIntentData(t, "hint3/"+tc.name+"_train.jsonl")
			opt := bot.ClassifierOptions{Seed: 1}
			trains, tests := openSetFolds(ex)
			var r bot.IntentReport
			if lightDataTests() {
				if tc.name != "sofmattress" {
					t.Skip("light mode: one catalog is enough")
				}
				var train, test []bot.Example
				for _, e := range tests[0] {
					if e.Intent != bot.IntentOOS {
						test = append(test, e)
					}
				}
				for _, e := range ex {
					if !slices.Contains(test, e) {
						train = append(train, e)
					}
				}
				r = bot.EvalIntents(train, test, opt)
				tc.top1 -= 0.05
			} else {
				r = bot.EvalIntents(ex, nil, opt)
			}
			logIntentReport(t, r)
			atLeastFloor(t, "top-1 accuracy", r.Top1Accuracy, tc.top1)

			var n, ok, oos, oosHit float64
			for f := range trains {
				if lightDataTests() && f > 0 {
					break
				}
				r := bot.EvalIntents(trains[f], tests[f], opt)
				n += float64(r.N)
				ok += r.Accuracy * float64(r.N)
				oos += float64(r.OutOfScope)
				oosHit += r.OOSRecall * float64(r.OutOfScope)
			}
			t.Logf("open set at threshold %.2f: accuracy %.3f, out-of-scope recall %.3f (%.0f of %.0f examples out of scope)",
				bot.DefaultIntentThreshold, ok/n, oosHit/oos, oos, n)
			if !lightDataTests() {
				atLeastFloor(t, "open-set accuracy", ok/n, tc.openAcc)
				atLeastFloor(t, "open-set out-of-scope recall", oosHit/oos, tc.openOOS)
			}
		})
	}
}

// BenchmarkTrainBanking77 measures training on the 10,003 Banking77
// examples, calibration included.
func BenchmarkTrainBanking77(b *testing.B) {
	train := loadIntentData(b, "banking77/train.jsonl")
	for b.Loop() {
		if _, err := bot.TrainClassifier(train, bot.ClassifierOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPredictBanking77 measures one prediction with the 77 Banking77
// intents.
func BenchmarkPredictBanking77(b *testing.B) {
	train, test := loadIntentData(b, "banking77/train.jsonl"), loadIntentData(b, "banking77/test.jsonl")
	c, err := bot.TrainClassifier(train, bot.ClassifierOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		c.Predict(test[i%len(test)].Text)
	}
}
