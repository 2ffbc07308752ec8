package bot

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/tandem-chat/tandem/internal/errs"
)

// LoadExamplesJSONL reads labelled examples, one JSON object per line:
// {"text": "...", "intent": "...", "is_oos": false}. Out-of-scope records
// (is_oos true, or intent "oos" or "NO_NODES_DETECTED") get the intent
// IntentOOS. Blank lines are skipped. A malformed line is an Invalid error
// that names the line.
func LoadExamplesJSONL(r io.Reader) ([]Example, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 16<<20)
	var out []Example
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var rec struct {
			Text   *string `json:"text"`
			Intent string  `json:"intent"`
			IsOOS  bool    `json:"is_oos"`
		}
		if err := json.Unmarshal(b, &rec); err != nil {
			return nil, errs.Errorf(errs.Invalid, "examples: line %d: %v", line, err)
		}
		if rec.Text == nil {
			return nil, errs.Errorf(errs.Invalid, "examples: line %d: missing \"text\"", line)
		}
		intent := strings.TrimSpace(rec.Intent)
		if rec.IsOOS || intent == IntentOOS || intent == "NO_NODES_DETECTED" {
			intent = IntentOOS
		}
		if intent == "" {
			return nil, errs.Errorf(errs.Invalid, "examples: line %d: missing \"intent\"", line)
		}
		out = append(out, Example{Text: *rec.Text, Intent: intent})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("examples: line %d: %w", line+1, err)
	}
	return out, nil
}

// IntentReport is the result of evaluating the classifier on labelled test
// examples. An out-of-scope test example counts as right when the
// classifier answers IntentNone; an in-scope one when it answers its intent.
type IntentReport struct {
	N          int // test examples
	OutOfScope int // of which labelled out of scope
	Intents    int // in-scope intents the classifier was trained on
	// Threshold is the confidence threshold the figures below are taken at:
	// the one in the options, or the classifier's default.
	Threshold       float64
	Accuracy        float64 // share of all test examples answered right
	InScopeAccuracy float64 // the same, over in-scope examples only
	OOSPrecision    float64 // of the IntentNone answers, share truly out of scope
	OOSRecall       float64 // of the out-of-scope examples, share answered IntentNone
	// Top1Accuracy is the accuracy with no confidence threshold (an
	// out-of-scope class, when trained, still answers IntentNone).
	Top1Accuracy float64
	// Curve is the answered-versus-correct curve, thresholds 0 to 1 by 0.05.
	Curve []CurvePoint
	// Tuned is the threshold, on a grid of 0.01, with the best accuracy on
	// these test examples: a fair choice when they are a validation split,
	// an optimistic one on a test split.
	Tuned CurvePoint
	// TrainSeconds is the wall time spent training (all folds, when
	// cross-validating).
	TrainSeconds float64
}

// CurvePoint is the outcome at one confidence threshold.
type CurvePoint struct {
	Threshold       float64
	Answered        float64 // share of test messages given an intent (not IntentNone)
	Correct         float64 // share of those answers that are right
	Accuracy        float64
	InScopeAccuracy float64
	OOSRecall       float64
}

// scoredExample is one test prediction before a threshold is applied.
type scoredExample struct {
	gold, top string
	conf      float64
	oosWins   bool
}

// EvalIntents trains a classifier on train and measures it on test. With no
// test examples it runs a stratified 5-fold cross-validation of train
// instead (folds drawn with opt.Seed). The headline figures are taken at
// opt.Threshold, or at DefaultIntentThreshold when that is zero. A report
// with N == 0 means there was nothing to measure (no training examples).
func EvalIntents(train, test []Example, opt ClassifierOptions) IntentReport {
	var scored []scoredExample
	var rep IntentReport
	if len(test) == 0 {
		for _, f := range stratifiedFolds(train, 5, opt.Seed) {
			s, r := evalSplit(f.train, f.test, opt)
			scored = append(scored, s...)
			rep.TrainSeconds += r.TrainSeconds
			rep.Threshold, rep.Intents = r.Threshold, max(rep.Intents, r.Intents)
		}
	} else {
		scored, rep = evalSplit(train, test, opt)
	}
	rep.N = len(scored)
	if rep.N == 0 {
		return rep
	}
	for _, s := range scored {
		if isOutOfScope(s.gold) {
			rep.OutOfScope++
		}
	}
	at := measure(scored, rep.Threshold)
	rep.Accuracy, rep.InScopeAccuracy = at.Accuracy, at.InScopeAccuracy
	rep.OOSPrecision, rep.OOSRecall = at.oosPrecision, at.OOSRecall
	rep.Top1Accuracy = measure(scored, 0).Accuracy
	for i := 0; i <= 20; i++ {
		rep.Curve = append(rep.Curve, measure(scored, float64(i)/20).CurvePoint)
	}
	for i := 0; i < 100; i++ {
		if m := measure(scored, float64(i)/100); i == 0 || m.Accuracy > rep.Tuned.Accuracy {
			rep.Tuned = m.CurvePoint
		}
	}
	return rep
}

// evalSplit trains on train and scores test, on all CPUs.
func evalSplit(train, test []Example, opt ClassifierOptions) ([]scoredExample, IntentReport) {
	var rep IntentReport
	start := time.Now()
	c, err := TrainClassifier(train, opt)
	rep.TrainSeconds = time.Since(start).Seconds()
	if err != nil {
		return nil, rep
	}
	rep.Threshold = c.threshold
	if rep.Threshold < 0 {
		rep.Threshold = 0
	}
	rep.Intents = len(c.Intents())
	out := make([]scoredExample, len(test))
	workers := runtime.GOMAXPROCS(0)
	jobs := make([]func(), workers)
	for w := range jobs {
		jobs[w] = func() {
			for i := w; i < len(test); i += workers {
				top, conf, oosWins := c.judge(test[i].Text)
				out[i] = scoredExample{gold: test[i].Intent, top: top, conf: conf, oosWins: oosWins}
			}
		}
	}
	runJobs(jobs)
	return out, rep
}

func isOutOfScope(intent string) bool { return intent == IntentOOS || intent == IntentNone }

type measured struct {
	CurvePoint
	oosPrecision float64
}

// measure applies threshold th to scored predictions.
func measure(scored []scoredExample, th float64) measured {
	var n, ok, in, inOK, oos, oosHit, none, answered, answeredOK float64
	for _, s := range scored {
		n++
		pred := s.top
		if s.oosWins || s.conf < th {
			pred = IntentNone
		}
		isOOS := isOutOfScope(s.gold)
		right := (isOOS && pred == IntentNone) || (!isOOS && pred == s.gold)
		if right {
			ok++
		}
		if isOOS {
			oos++
			if pred == IntentNone {
				oosHit++
			}
		} else {
			in++
			if right {
				inOK++
			}
		}
		if pred == IntentNone {
			none++
		} else {
			answered++
			if right {
				answeredOK++
			}
		}
	}
	return measured{
		CurvePoint: CurvePoint{
			Threshold:       th,
			Answered:        ratio(answered, n),
			Correct:         ratio(answeredOK, answered),
			Accuracy:        ratio(ok, n),
			InScopeAccuracy: ratio(inOK, in),
			OOSRecall:       ratio(oosHit, oos),
		},
		oosPrecision: ratio(oosHit, none),
	}
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// Format writes the report as a human-readable table.
func (r IntentReport) Format(w io.Writer) {
	fmt.Fprintf(w, "%d test examples (%d out of scope), %d intents, training %.1f s\n", r.N, r.OutOfScope, r.Intents, r.TrainSeconds)
	fmt.Fprintf(w, "top-1 accuracy (no threshold): %.4f (%d of %d)\n", r.Top1Accuracy, int(math.Round(r.Top1Accuracy*float64(r.N))), r.N)
	fmt.Fprintf(w, "at threshold %.2f: accuracy %.3f, in-scope accuracy %.3f", r.Threshold, r.Accuracy, r.InScopeAccuracy)
	if r.OutOfScope > 0 {
		fmt.Fprintf(w, ", out-of-scope precision %.3f, recall %.3f", r.OOSPrecision, r.OOSRecall)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "best threshold on these examples %.2f: accuracy %.3f, in-scope accuracy %.3f", r.Tuned.Threshold, r.Tuned.Accuracy, r.Tuned.InScopeAccuracy)
	if r.OutOfScope > 0 {
		fmt.Fprintf(w, ", out-of-scope recall %.3f", r.Tuned.OOSRecall)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "%9s  %8s  %7s  %8s  %8s  %10s\n", "threshold", "answered", "correct", "accuracy", "in-scope", "oos-recall")
	for _, p := range r.Curve {
		fmt.Fprintf(w, "%9.2f  %8.3f  %7.3f  %8.3f  %8.3f  %10.3f\n", p.Threshold, p.Answered, p.Correct, p.Accuracy, p.InScopeAccuracy, p.OOSRecall)
	}
}

type fold struct{ train, test []Example }

// stratifiedFolds splits examples into k folds that keep each intent's
// share. An intent with fewer than k examples is missing from the training
// part of some folds, as it would be in real use.
func stratifiedFolds(examples []Example, k int, seed uint64) []fold {
	byIntent := map[string][]int{}
	var names []string
	for i, e := range examples {
		if _, ok := byIntent[e.Intent]; !ok {
			names = append(names, e.Intent)
		}
		byIntent[e.Intent] = append(byIntent[e.Intent], i)
	}
	sort.Strings(names)
	rng := rand.New(rand.NewPCG(seed, 0xf01d))
	foldOf := make([]int, len(examples))
	next := 0
	for _, n := range names {
		idx := byIntent[n]
		rng.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
		for _, i := range idx {
			foldOf[i] = next % k
			next++
		}
	}
	folds := make([]fold, k)
	for i, e := range examples {
		for f := range folds {
			if foldOf[i] == f {
				folds[f].test = append(folds[f].test, e)
			} else {
				folds[f].train = append(folds[f].train, e)
			}
		}
	}
	return folds
}
