package bot

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
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

// IntentReport is the result of evaluating a classifier on labelled test
// examples. Accuracies count an out-of-scope example as correct when the
// classifier answers IntentNone.
type IntentReport struct {
	N int // test examples
	// Threshold is the confidence threshold the figures below are taken at.
	Threshold       float64
	Accuracy        float64 // all test examples
	InScopeAccuracy float64 // in-scope examples only
	OOSPrecision    float64 // of the messages answered IntentNone, share truly out of scope
	OOSRecall       float64 // of the out-of-scope messages, share answered IntentNone
	// Top1Accuracy is the accuracy with no confidence threshold.
	Top1Accuracy float64
	Curve        []CurvePoint
	TrainSeconds float64
	Intents      int
}

// CurvePoint is one point of the answered-versus-correct curve: at this
// threshold, the share of test messages answered (not IntentNone) and the
// share of those answers that are correct, with the in-scope accuracy and
// out-of-scope recall.
type CurvePoint struct {
	Threshold       float64
	Answered        float64
	Correct         float64
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
// instead. The figures are taken at opt.Threshold, or at the classifier's
// default threshold when that is zero.
func EvalIntents(train, test []Example, opt ClassifierOptions) IntentReport {
	var scored []scoredExample
	var rep IntentReport
	if len(test) == 0 {
		for _, f := range stratifiedFolds(train, 5, opt.Seed) {
			s, r := evalSplit(f.train, f.test, opt)
			scored = append(scored, s...)
			rep.TrainSeconds += r.TrainSeconds
			rep.Threshold = r.Threshold
			rep.Intents = r.Intents
		}
	} else {
		scored, rep = evalSplit(train, test, opt)
	}
	rep.N = len(scored)
	if rep.N == 0 {
		return rep
	}
	at := measure(scored, rep.Threshold)
	rep.Accuracy, rep.InScopeAccuracy = at.accuracy, at.inScope
	rep.OOSPrecision, rep.OOSRecall = at.oosPrecision, at.oosRecall
	rep.Top1Accuracy = measure(scored, 0).accuracy
	for i := 0; i <= 20; i++ {
		th := float64(i) / 20
		m := measure(scored, th)
		rep.Curve = append(rep.Curve, CurvePoint{Threshold: th, Answered: m.answered, Correct: m.correct, InScopeAccuracy: m.inScope, OOSRecall: m.oosRecall})
	}
	return rep
}

func evalSplit(train, test []Example, opt ClassifierOptions) ([]scoredExample, IntentReport) {
	var rep IntentReport
	start := time.Now()
	c, err := TrainClassifier(train, opt)
	rep.TrainSeconds = time.Since(start).Seconds()
	if err != nil {
		return nil, rep
	}
	rep.Threshold = c.threshold
	rep.Intents = len(c.Intents())
	out := make([]scoredExample, len(test))
	for i, e := range test {
		top, conf, oosWins := c.judge(e.Text)
		out[i] = scoredExample{gold: e.Intent, top: top, conf: conf, oosWins: oosWins}
	}
	return out, rep
}

type measured struct {
	accuracy, inScope, oosPrecision, oosRecall, answered, correct float64
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
		isOOS := s.gold == IntentOOS
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
		accuracy:     ok / n,
		inScope:      ratio(inOK, in),
		oosPrecision: ratio(oosHit, none),
		oosRecall:    ratio(oosHit, oos),
		answered:     answered / n,
		correct:      ratio(answeredOK, answered),
	}
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

type fold struct{ train, test []Example }

// stratifiedFolds splits examples into k folds that keep each intent's
// share; every intent with at least two examples keeps one in training.
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
