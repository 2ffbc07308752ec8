package bot

import (
	"cmp"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/tandem-chat/tandem/internal/errs"
)

// The local intent classifier: TF-IDF features (features.go) feed a
// multinomial logistic regression trained with SGD and feature dropout, whose
// logits are nudged by the cosine similarity to the nearest training example
// of each intent. A temperature fitted on held-out examples turns the logits
// into probabilities that behave like the chance of being right, so one
// threshold means the same thing whatever the number of intents.

// IntentNone is the intent Predict returns for a message that is out of
// scope or that the classifier is not confident about.
const IntentNone = "none"

// IntentOOS is the label of out-of-scope examples. In training data it is a
// class of its own (a message like these is answered IntentNone); in test
// data the classifier is right on it when it answers IntentNone.
const IntentOOS = "oos"

// DefaultIntentThreshold is the confidence below which Predict answers
// IntentNone when ClassifierOptions.Threshold is zero.
const DefaultIntentThreshold = 0.5

// Example is one labelled phrase.
type Example struct {
	Text   string
	Intent string
}

// Scored is an intent with its probability.
type Scored struct {
	Intent string
	Score  float64
}

// Prediction is the classifier's best guess.
type Prediction struct {
	// Intent is the best intent, or IntentNone when the message looks out
	// of scope or Confidence is below the threshold.
	Intent string
	// Confidence is the probability of the best in-scope intent (also when
	// Intent is IntentNone), calibrated on held-out training examples.
	Confidence float64
	// Ranked lists the top few in-scope intents, best first.
	Ranked []Scored
}

// ClassifierOptions tunes training. The zero value gives the defaults, which
// measure well on public intent data sets; see EvalIntents.
type ClassifierOptions struct {
	// Epochs is the number of SGD passes over the examples (default 10).
	Epochs int
	// L2 is the weight decay per example (default 3e-6).
	L2 float64
	// Threshold is the confidence below which Predict answers IntentNone:
	// 0 means DefaultIntentThreshold, a negative value never answers
	// IntentNone for low confidence.
	Threshold float64
	// Seed makes training reproducible; the same examples, options and
	// seed give the same classifier.
	Seed uint64

	// Settings for experiments; the zero value means the defaults.
	feat    featureConfig
	eta0    float64 // initial learning rate
	drop    float64 // feature dropout rate during training; <0 for none
	knn     float64 // weight of the nearest-neighbour similarity; <0 for none
	noCalib bool    // keep temperature 1
}

func (o ClassifierOptions) withDefaults() ClassifierOptions {
	if o.Epochs <= 0 {
		o.Epochs = 10
	}
	if o.L2 <= 0 {
		o.L2 = 3e-6
	}
	if o.Threshold == 0 {
		o.Threshold = DefaultIntentThreshold
	}
	if o.feat == (featureConfig{}) {
		o.feat = defaultFeatures
	}
	if o.eta0 <= 0 {
		o.eta0 = 3
	}
	if o.drop == 0 {
		o.drop = 0.3
	}
	if o.knn == 0 {
		o.knn = 2
	}
	return o
}

// Classifier is a trained intent classifier. It is immutable and safe for
// concurrent use.
type Classifier struct {
	intents   []string // class names, sorted; may include IntentOOS
	oos       int      // index of IntentOOS in intents, or -1
	m         *model
	temp      float64 // logits are divided by it before the softmax
	threshold float64
}

// TrainClassifier trains a classifier from labelled examples. Examples with
// intent IntentOOS (or IntentNone) teach it what is out of scope. It returns
// an Invalid error when there are no examples or one has no intent.
func TrainClassifier(examples []Example, opt ClassifierOptions) (*Classifier, error) {
	if len(examples) == 0 {
		return nil, errs.Errorf(errs.Invalid, "intent classifier: no examples")
	}
	opt = opt.withDefaults()
	// Sorted, so that the same examples in any order train the same
	// classifier.
	examples = slices.Clone(examples)
	slices.SortStableFunc(examples, func(a, b Example) int {
		return cmp.Or(cmp.Compare(a.Intent, b.Intent), cmp.Compare(a.Text, b.Text))
	})
	names := map[string]int{}
	for i, e := range examples {
		name := strings.TrimSpace(e.Intent)
		if name == "" {
			return nil, errs.Errorf(errs.Invalid, "intent classifier: example %d (%q) has no intent", i+1, e.Text)
		}
		if name == IntentNone {
			name = IntentOOS
		}
		names[name] = 0
	}
	intents := make([]string, 0, len(names))
	for n := range names {
		intents = append(intents, n)
	}
	sort.Strings(intents)
	for i, n := range intents {
		names[n] = i
	}
	texts := make([]string, len(examples))
	y := make([]int, len(examples))
	for i, e := range examples {
		texts[i] = e.Text
		name := strings.TrimSpace(e.Intent)
		if name == IntentNone {
			name = IntentOOS
		}
		y[i] = names[name]
	}
	c := &Classifier{intents: intents, oos: -1, temp: 1, threshold: opt.Threshold}
	if i, ok := names[IntentOOS]; ok {
		c.oos = i
	}

	// The full model and the held-out models used for calibration are
	// independent: train them side by side.
	held := calibrationFolds(y, opt.Seed)
	if opt.noCalib {
		held = nil
	}
	type heldOut struct {
		logits [][]float64
		y      []int
	}
	results := make([]heldOut, len(held))
	jobs := make([]func(), 0, 1+len(held))
	jobs = append(jobs, func() { c.m = fit(texts, y, len(intents), opt) })
	for f, isTest := range held {
		jobs = append(jobs, func() {
			var trX, teX []string
			var trY, teY []int
			for i, t := range isTest {
				if t {
					teX, teY = append(teX, texts[i]), append(teY, y[i])
				} else {
					trX, trY = append(trX, texts[i]), append(trY, y[i])
				}
			}
			o := opt
			o.Seed += uint64(f+1) * 0x9e37
			m := fit(trX, trY, len(intents), o)
			r := heldOut{y: teY, logits: make([][]float64, len(teX))}
			for i, t := range teX {
				r.logits[i] = make([]float64, len(intents))
				m.logits(t, r.logits[i])
			}
			results[f] = r
		})
	}
	runJobs(jobs)
	var logits [][]float64
	var gold []int
	for _, r := range results {
		logits = append(logits, r.logits...)
		gold = append(gold, r.y...)
	}
	c.temp = fitTemperature(logits, gold)
	return c, nil
}

// runJobs runs fns on as many goroutines as there are CPUs to use.
func runJobs(fns []func()) {
	workers := min(runtime.GOMAXPROCS(0), len(fns))
	next := make(chan func())
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for fn := range next {
				fn()
			}
		}()
	}
	for _, fn := range fns {
		next <- fn
	}
	close(next)
	wg.Wait()
}

// calibrationFolds chooses held-out splits of the examples for calibration:
// one split of a fifth when there are enough examples, otherwise a 5-fold
// cross-validation, which costs little on small sets. An intent with a
// single example is never held out. Each element marks the held-out
// examples of one split; nil when there is too little data to calibrate.
func calibrationFolds(y []int, seed uint64) [][]bool {
	const k = 5
	byClass := map[int][]int{}
	for i, c := range y {
		byClass[c] = append(byClass[c], i)
	}
	classes := make([]int, 0, len(byClass))
	for c := range byClass {
		classes = append(classes, c)
	}
	slices.Sort(classes)
	rng := rand.New(rand.NewPCG(seed, 0xca11))
	foldOf := make([]int, len(y))
	heldOut := 0
	for _, c := range classes {
		idx := byClass[c]
		if len(idx) < 2 {
			foldOf[idx[0]] = -1
			continue
		}
		rng.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
		off := rng.IntN(k)
		for j, i := range idx {
			foldOf[i] = (off + j) % k
		}
		heldOut += len(idx)
	}
	if heldOut < 20 || len(byClass) < 2 {
		return nil
	}
	folds := k
	if heldOut >= 1500 {
		folds = 1
	}
	out := make([][]bool, folds)
	for f := range out {
		out[f] = make([]bool, len(y))
		for i, fo := range foldOf {
			out[f][i] = fo == f
		}
	}
	return out
}

// fitTemperature returns the temperature that minimises the negative
// log-likelihood of the gold classes under softmax(logits / T); 1 when there
// is nothing to fit on. The targets are smoothed towards uniform by
// 1/(n+2), as if one more held-out example had been answered at random, so
// that a small held-out set classified perfectly does not make the
// classifier certain of everything.
func fitTemperature(logits [][]float64, gold []int) float64 {
	if len(logits) == 0 {
		return 1
	}
	eps := 1 / float64(len(logits)+2)
	z := make([]float64, len(logits[0]))
	nll := func(beta float64) float64 {
		var sum float64
		for i, l := range logits {
			mx := math.Inf(-1)
			var mean float64
			for k, v := range l {
				z[k] = v * beta
				mx = max(mx, z[k])
				mean += z[k]
			}
			mean /= float64(len(z))
			var s float64
			for _, v := range z {
				s += math.Exp(v - mx)
			}
			lse := math.Log(s) + mx
			sum += lse - (1-eps)*z[gold[i]] - eps*mean
		}
		return sum
	}
	// The NLL is convex in beta = 1/T: golden-section search on log beta.
	lo, hi := math.Log(0.02), math.Log(50.0)
	const phi = 0.6180339887498949
	a, b := hi-phi*(hi-lo), lo+phi*(hi-lo)
	fa, fb := nll(math.Exp(a)), nll(math.Exp(b))
	for range 40 {
		if fa < fb {
			hi, b, fb = b, a, fa
			a = hi - phi*(hi-lo)
			fa = nll(math.Exp(a))
		} else {
			lo, a, fa = a, b, fb
			b = lo + phi*(hi-lo)
			fb = nll(math.Exp(b))
		}
	}
	return 1 / math.Exp((lo+hi)/2)
}

// Intents returns the in-scope intents the classifier knows, sorted.
func (c *Classifier) Intents() []string {
	out := make([]string, 0, len(c.intents))
	for i, n := range c.intents {
		if i != c.oos {
			out = append(out, n)
		}
	}
	return out
}

// Threshold returns the confidence below which Predict answers IntentNone.
func (c *Classifier) Threshold() float64 { return c.threshold }

// Predict classifies text: the best intent, or IntentNone when the message
// looks out of scope or the confidence is below the threshold. It is safe
// for concurrent use.
func (c *Classifier) Predict(text string) Prediction {
	p := c.probs(text)
	ranked := make([]Scored, 0, len(p))
	for k, v := range p {
		if k != c.oos {
			ranked = append(ranked, Scored{Intent: c.intents[k], Score: v})
		}
	}
	slices.SortStableFunc(ranked, func(a, b Scored) int { return cmp.Compare(b.Score, a.Score) })
	if len(ranked) > 5 {
		ranked = ranked[:5]
	}
	pred := Prediction{Intent: IntentNone, Ranked: ranked}
	if len(ranked) == 0 {
		return pred
	}
	pred.Confidence = ranked[0].Score
	oosWins := c.oos >= 0 && p[c.oos] >= pred.Confidence
	if !oosWins && pred.Confidence >= c.threshold {
		pred.Intent = ranked[0].Intent
	}
	return pred
}

// probs returns the calibrated probability of each class for text.
func (c *Classifier) probs(text string) []float64 {
	z := make([]float64, len(c.intents))
	c.m.logits(text, z)
	for k := range z {
		z[k] /= c.temp
	}
	softmax(z)
	return z
}

// judge returns the best in-scope intent for text, its probability, and
// whether the out-of-scope class beats it; for evaluation at any threshold.
func (c *Classifier) judge(text string) (intent string, conf float64, oosWins bool) {
	p := c.probs(text)
	best := -1
	for k, v := range p {
		if k != c.oos && (best < 0 || v > p[best]) {
			best = k
		}
	}
	if best < 0 {
		return IntentNone, 0, true
	}
	return c.intents[best], p[best], c.oos >= 0 && p[c.oos] >= p[best]
}

// model is a fitted featurizer, linear model and neighbour index.
type model struct {
	feat   *featurizer
	lin    *linearModel
	near   *neighbours
	nearW  float64
	nClass int
}

// fit trains a model on texts labelled with classes 0..K-1 (some may have
// no examples).
func fit(texts []string, y []int, K int, opt ClassifierOptions) *model {
	feat := newFeaturizer(opt.feat, texts)
	X := make([]sparseVec, len(texts))
	for i, t := range texts {
		X[i] = feat.vector(t)
	}
	m := &model{feat: feat, nClass: K}
	m.lin = trainSoftmax(X, y, K, feat.dim(), opt)
	if opt.knn > 0 {
		m.near = newNeighbours(X, y, K, feat.dim())
		// Relative to a vector's norm when all its n-grams are known, so
		// that a message with many unknown n-grams (a short vector) gets
		// low similarities.
		m.nearW = opt.knn / math.Hypot(opt.feat.wordWeight, opt.feat.charWeight)
	}
	return m
}

// logits sets z (length K) to the class scores of text.
func (m *model) logits(text string, z []float64) {
	x := m.feat.vector(text)
	m.lin.logits(x, z)
	if m.near != nil {
		m.near.addSims(x, m.nearW, z)
	}
}

// linearModel is a multinomial logistic regression over sparse features;
// w holds one row of k weights per feature.
type linearModel struct {
	k int
	w []float32
	b []float32
}

// logits sets out to the scores of x.
func (m *linearModel) logits(x sparseVec, out []float64) {
	acc := make([]float32, m.k)
	m.dot(x, acc)
	for k := range out {
		out[k] = float64(acc[k]) + float64(m.b[k])
	}
}

// dot sets acc to the product of x with the weights, without the bias.
// Four rows are summed per pass over acc: this is the hot loop of both
// training and prediction.
func (m *linearModel) dot(x sparseVec, acc []float32) {
	K := m.k
	acc = acc[:K]
	clear(acc)
	idx, val := x.idx, x.val
	j := 0
	for ; j+4 <= len(idx); j += 4 {
		v0, v1, v2, v3 := val[j], val[j+1], val[j+2], val[j+3]
		r0 := m.w[int(idx[j])*K:][:len(acc)]
		r1 := m.w[int(idx[j+1])*K:][:len(acc)]
		r2 := m.w[int(idx[j+2])*K:][:len(acc)]
		r3 := m.w[int(idx[j+3])*K:][:len(acc)]
		for k := range acc {
			acc[k] += v0*r0[k] + v1*r1[k] + v2*r2[k] + v3*r3[k]
		}
	}
	for ; j < len(idx); j++ {
		v := val[j]
		r := m.w[int(idx[j])*K:][:len(acc)]
		for k := range acc {
			acc[k] += v * r[k]
		}
	}
}

// softmax turns z into probabilities in place.
func softmax(z []float64) {
	mx := math.Inf(-1)
	for _, v := range z {
		mx = max(mx, v)
	}
	var sum float64
	for k, v := range z {
		z[k] = math.Exp(v - mx)
		sum += z[k]
	}
	for k := range z {
		z[k] /= sum
	}
}

// trainSoftmax fits a multinomial logistic regression by SGD on the
// cross-entropy with L2 weight decay (applied lazily through a global
// scale), a learning rate that decays linearly to zero, and dropout of
// input features, which regularises better than L2 alone on short texts.
func trainSoftmax(X []sparseVec, y []int, K, F int, opt ClassifierOptions) *linearModel {
	m := &linearModel{k: K, w: make([]float32, F*K), b: make([]float32, K)}
	rng := rand.New(rand.NewPCG(opt.Seed, 0x7a4d))
	order := make([]int, len(X))
	for i := range order {
		order[i] = i
	}
	z := make([]float64, K)
	acc := make([]float32, K)
	active := make([]int, 0, K)
	g := make([]float32, 0, K)
	scale := 1.0 // the true weights are scale * m.w
	var dropped sparseVec
	total := float64(opt.Epochs * len(X))
	t := 0.0
	for range opt.Epochs {
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for _, i := range order {
			eta := opt.eta0 * (1 - t/total)
			t++
			x := X[i]
			if opt.drop > 0 {
				x = dropout(x, opt.drop, rng, &dropped)
			}
			m.dot(x, acc)
			for k := range z {
				z[k] = float64(acc[k])*scale + float64(m.b[k])
			}
			softmax(z)
			z[y[i]] -= 1 // z is now the gradient of the loss in the logits
			scale *= 1 - eta*opt.L2
			// Classes whose gradient is negligible are skipped: after the
			// first epoch that is most of them, and most of the work.
			active, g = active[:0], g[:0]
			for k, d := range z {
				if d > 1e-4 || d < -1e-4 {
					active = append(active, k)
					g = append(g, float32(eta*d/scale))
					m.b[k] -= float32(eta * d * 0.1)
				}
			}
			for j, f := range x.idx {
				xv := x.val[j]
				row := m.w[int(f)*K:][:K]
				for a, k := range active {
					row[k] -= g[a] * xv
				}
			}
			if scale < 1e-4 {
				for k := range m.w {
					m.w[k] *= float32(scale)
				}
				scale = 1
			}
		}
	}
	for k := range m.w {
		m.w[k] *= float32(scale)
	}
	return m
}

// dropout returns x with each feature dropped at rate p and the rest scaled
// up by 1/(1-p), reusing buf.
func dropout(x sparseVec, p float64, rng *rand.Rand, buf *sparseVec) sparseVec {
	buf.idx, buf.val = buf.idx[:0], buf.val[:0]
	up := float32(1 / (1 - p))
	for j, f := range x.idx {
		if rng.Float64() >= p {
			buf.idx = append(buf.idx, f)
			buf.val = append(buf.val, x.val[j]*up)
		}
	}
	return *buf
}

// neighbours is an inverted index of the training vectors, for the cosine
// similarity to the nearest example of each class.
type neighbours struct {
	k        int
	label    []int32
	norm     []float32
	postings [][]posting
}

type posting struct {
	doc int32
	val float32
}

func newNeighbours(X []sparseVec, y []int, K, F int) *neighbours {
	n := &neighbours{k: K, label: make([]int32, len(X)), norm: make([]float32, len(X)), postings: make([][]posting, F)}
	for d, x := range X {
		n.label[d] = int32(y[d])
		var ss float32
		for j, f := range x.idx {
			n.postings[f] = append(n.postings[f], posting{int32(d), x.val[j]})
			ss += x.val[j] * x.val[j]
		}
		n.norm[d] = float32(math.Sqrt(float64(ss)))
	}
	return n
}

// addSims adds to z, for each class, w times the highest dot product of x
// with one of its training examples, normalised.
func (n *neighbours) addSims(x sparseVec, w float64, z []float64) {
	acc := make([]float32, len(n.label))
	for j, f := range x.idx {
		q := x.val[j]
		for _, p := range n.postings[f] {
			acc[p.doc] += q * p.val
		}
	}
	best := make([]float32, n.k)
	for d, a := range acc {
		if a == 0 {
			continue
		}
		if s := a / n.norm[d]; s > best[n.label[d]] {
			best[n.label[d]] = s
		}
	}
	for k, s := range best {
		z[k] += w * float64(s)
	}
}
