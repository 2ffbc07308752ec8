package bot

import (
	"cmp"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/tandem-chat/tandem/internal/errs"
)

// The local intent classifier.
//
// Features (features.go): TF-IDF with sublinear tf over word 1-2 grams and
// character 2-5 grams inside word boundaries, one block each, each scaled to
// norm 1; n-grams unknown to the vocabulary still count in the norm, so a
// message made mostly of unknown text gets a short vector and low scores.
//
// Model: a multinomial logistic regression trained by SGD with input
// dropout and L2, averaged over two seeds, whose logits get a bonus for the
// cosine similarity to the nearest training example of each intent (which
// helps when intents have few examples).
//
// Calibration: models trained on part of the examples score the rest; some
// intents are left out of their training, and their held-out examples show
// what a message about none of the intents looks like. A temperature and
// the logit of a virtual "none" class are fitted to these by maximum
// likelihood, so Confidence behaves like the probability of being right,
// including the risk that the message is about none of the intents (about
// one message in five in the calibration data). When the examples include
// an out-of-scope class, its held-out examples play that part instead.
//
// The full model and the calibration models are trained side by side on the
// available CPUs.

// Training settings, chosen by cross-validation on the training splits of
// the public data sets (Banking77, CLINC150, HINT3); see EvalIntents.
const (
	defaultEpochs   = 10
	defaultL2       = 3e-6
	learningRate    = 2.0  // initial; decays linearly to zero
	dropoutRate     = 0.4  // of input features, during training
	bags            = 2    // models averaged, with different seeds
	neighbourWeight = 2.0  // of the nearest-neighbour similarity, in logits
	neighbourMaxDF  = 0.02 // n-grams in more examples are not indexed
	calibrationK    = 5    // folds, or the held-out share 1/k
	rankedLen       = 5    // intents in Prediction.Ranked
)

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
	// Seed makes training reproducible: the same examples (in any order),
	// options and seed give the same classifier.
	Seed uint64
}

func (o ClassifierOptions) withDefaults() ClassifierOptions {
	if o.Epochs <= 0 {
		o.Epochs = defaultEpochs
	}
	if o.L2 <= 0 {
		o.L2 = defaultL2
	}
	if o.Threshold == 0 {
		o.Threshold = DefaultIntentThreshold
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
	none      float64 // logit of the virtual "none" class, after temperature
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
	examples = slices.Clone(examples)
	for i := range examples {
		e := &examples[i]
		e.Intent = strings.TrimSpace(e.Intent)
		if e.Intent == "" {
			return nil, errs.Errorf(errs.Invalid, "intent classifier: example %d (%q) has no intent", i+1, e.Text)
		}
		if e.Intent == IntentNone {
			e.Intent = IntentOOS
		}
	}
	// Sorted, so that the same examples in any order train the same
	// classifier.
	slices.SortFunc(examples, func(a, b Example) int {
		return cmp.Or(cmp.Compare(a.Intent, b.Intent), cmp.Compare(a.Text, b.Text))
	})
	var intents []string
	names := map[string]int{}
	texts := make([]string, len(examples))
	y := make([]int, len(examples))
	for i, e := range examples {
		if _, ok := names[e.Intent]; !ok {
			names[e.Intent] = len(intents)
			intents = append(intents, e.Intent)
		}
		texts[i], y[i] = e.Text, names[e.Intent]
	}
	c := &Classifier{intents: intents, oos: -1, temp: 1, none: math.Inf(-1), threshold: opt.Threshold}
	if i, ok := names[IntentOOS]; ok {
		c.oos = i
	}

	// The full model and the held-out models used for calibration are
	// independent: train them side by side.
	splits := calibrationSplits(y, len(intents), c.oos, opt.Seed)
	held := make([]heldOut, len(splits))
	jobs := []func(){func() { c.m = fit(texts, y, len(intents), opt) }}
	for f, sp := range splits {
		jobs = append(jobs, func() {
			o := opt
			o.Seed += uint64(f+1) * 0x9e37
			held[f] = sp.run(texts, y, len(intents), c.oos, o)
		})
	}
	runJobs(jobs)
	var all heldOut
	for _, h := range held {
		all.logits = append(all.logits, h.logits...)
		all.gold = append(all.gold, h.gold...)
	}
	c.temp, c.none = fitCalibration(all, c.oos)
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

// outOfScope is the gold label of a held-out example whose intent the
// model was not trained on, or of an example of the out-of-scope class.
const outOfScope = -1

// calibSplit is one held-out split for calibration: some examples are held
// out, and some intents are left out of training altogether, so that their
// held-out examples show how the model treats messages it has no intent for.
type calibSplit struct {
	heldOut  []bool // by example
	excluded []bool // by class
}

// heldOut holds the logits of held-out examples and their gold classes
// (outOfScope for unknown intents and out-of-scope examples).
type heldOut struct {
	logits [][]float64
	gold   []int
}

// calibrationSplits chooses held-out splits of the examples: one split of
// a fifth when there are enough examples, otherwise a 5-fold
// cross-validation, which costs little on small sets. An intent with a
// single example is never held out. Each split also leaves out about a
// fifth of the intents (each intent once over the folds). Nil when there
// is too little data to calibrate on.
func calibrationSplits(y []int, K, oos int, seed uint64) []calibSplit {
	const k = calibrationK
	byClass := make([][]int, K)
	for i, c := range y {
		byClass[c] = append(byClass[c], i)
	}
	rng := rand.New(rand.NewPCG(seed, 0xca11))
	foldOf := make([]int, len(y))
	heldOut := 0
	var inScope []int
	for c, idx := range byClass {
		if c != oos && len(idx) > 0 {
			inScope = append(inScope, c)
		}
		if len(idx) < 2 {
			for _, i := range idx {
				foldOf[i] = -1
			}
			continue
		}
		rng.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
		off := rng.IntN(k)
		for j, i := range idx {
			foldOf[i] = (off + j) % k
		}
		heldOut += len(idx)
	}
	if heldOut < 20 || len(inScope) < 2 {
		return nil
	}
	folds := k
	if heldOut >= 1500 {
		folds = 1
	}
	// Intents to leave out, in turn; none when there are too few intents
	// to spare one.
	rng.Shuffle(len(inScope), func(i, j int) { inScope[i], inScope[j] = inScope[j], inScope[i] })
	out := make([]calibSplit, folds)
	for f := range out {
		sp := calibSplit{heldOut: make([]bool, len(y)), excluded: make([]bool, K)}
		for i, fo := range foldOf {
			sp.heldOut[i] = fo == f
		}
		// With out-of-scope examples in the data, they show what is out of
		// scope; otherwise, intents left out stand in for them.
		if len(inScope) >= 3 && oos < 0 {
			for j, c := range inScope {
				sp.excluded[c] = j%k == f
			}
		}
		out[f] = sp
	}
	return out
}

// run trains a model on the split's training part and returns the logits
// of its held-out examples.
func (sp calibSplit) run(texts []string, y []int, K, oos int, opt ClassifierOptions) heldOut {
	var trX, teX []string
	var trY, teY []int
	for i, t := range texts {
		switch {
		case sp.heldOut[i]:
			gold := y[i]
			if sp.excluded[gold] || gold == oos {
				gold = outOfScope
			}
			teX, teY = append(teX, t), append(teY, gold)
		case !sp.excluded[y[i]]:
			trX, trY = append(trX, t), append(trY, y[i])
		}
	}
	h := heldOut{gold: teY, logits: make([][]float64, len(teX))}
	if len(trX) == 0 {
		return heldOut{}
	}
	m := fit(trX, trY, K, opt)
	for i, t := range teX {
		h.logits[i] = make([]float64, K)
		m.logits(t, h.logits[i])
	}
	return h
}

// fitCalibration fits, by maximum likelihood on held-out examples, the
// temperature T that divides the logits and the logit of a virtual "none"
// class that takes the probability of messages the classifier has no
// intent for (-Inf when the held-out examples have none). Targets are
// smoothed towards uniform by 1/(n+2), as if one more held-out example had
// been answered at random, so that a small held-out set classified
// perfectly does not make the classifier certain of everything.
func fitCalibration(h heldOut, oos int) (temp, none float64) {
	n := len(h.logits)
	if n == 0 {
		return 1, math.Inf(-1)
	}
	hasOut := false
	for _, g := range h.gold {
		hasOut = hasOut || g == outOfScope
	}
	eps := 1 / float64(n+2)
	K := len(h.logits[0])
	// For a given beta = 1/T, per example: the log-sum-exp of the class
	// logits, their mean, the gold logit and the out-of-scope class logit.
	lse, mean, gold, oosZ := make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n)
	prepare := func(beta float64) {
		for i, l := range h.logits {
			mx := math.Inf(-1)
			var m float64
			for _, v := range l {
				mx = max(mx, v*beta)
				m += v * beta
			}
			var s float64
			for _, v := range l {
				s += math.Exp(v*beta - mx)
			}
			lse[i], mean[i] = math.Log(s)+mx, m/float64(K)
			oosZ[i] = math.Inf(-1)
			if oos >= 0 {
				oosZ[i] = l[oos] * beta
			}
			if g := h.gold[i]; g >= 0 {
				gold[i] = l[g] * beta
			}
		}
	}
	// The negative log-likelihood given prepare(beta) and the none logit c.
	nll := func(c float64) float64 {
		var sum float64
		for i := range lse {
			all := logAddExp(lse[i], c)
			var target float64
			if g := h.gold[i]; g >= 0 {
				target = gold[i]
			} else {
				target = logAddExp(oosZ[i], c)
			}
			// Smoothing spreads eps over the classes, none included.
			spread := mean[i]
			if !math.IsInf(c, -1) {
				spread = (mean[i]*float64(K) + c) / float64(K+1)
			}
			sum += all - (1-eps)*target - eps*spread
		}
		return sum
	}
	bestC := func() (float64, float64) {
		if !hasOut {
			return math.Inf(-1), nll(math.Inf(-1))
		}
		return goldenMin(nll, -30, 30)
	}
	logBeta, _ := goldenMin(func(lb float64) float64 {
		prepare(math.Exp(lb))
		_, v := bestC()
		return v
	}, math.Log(0.02), math.Log(50))
	prepare(math.Exp(logBeta))
	none, _ = bestC()
	return 1 / math.Exp(logBeta), none
}

// logAddExp returns log(exp(a) + exp(b)).
func logAddExp(a, b float64) float64 {
	if a < b {
		a, b = b, a
	}
	if math.IsInf(a, -1) {
		return a
	}
	return a + math.Log1p(math.Exp(b-a))
}

// goldenMin minimises a unimodal f on [lo, hi] by golden-section search and
// returns the argument and the value.
func goldenMin(f func(float64) float64, lo, hi float64) (float64, float64) {
	const phi = 0.6180339887498949
	a, b := hi-phi*(hi-lo), lo+phi*(hi-lo)
	fa, fb := f(a), f(b)
	for range 36 {
		if fa < fb {
			hi, b, fb = b, a, fa
			a = hi - phi*(hi-lo)
			fa = f(a)
		} else {
			lo, a, fa = a, b, fb
			b = lo + phi*(hi-lo)
			fb = f(b)
		}
	}
	x := (lo + hi) / 2
	return x, f(x)
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
// looks out of scope (the out-of-scope class, when trained, is likelier than
// any intent) or the confidence is below the threshold. It is safe for
// concurrent use.
func (c *Classifier) Predict(text string) Prediction {
	p := c.probs(text)
	// The top few by insertion: the catalog may have hundreds of intents.
	ranked := make([]Scored, 0, rankedLen+1)
	for k, v := range p {
		if k == c.oos || (len(ranked) == rankedLen && v <= ranked[rankedLen-1].Score) {
			continue
		}
		i := len(ranked)
		for i > 0 && ranked[i-1].Score < v {
			i--
		}
		ranked = slices.Insert(ranked, i, Scored{Intent: c.intents[k], Score: v})
		if len(ranked) > rankedLen {
			ranked = ranked[:rankedLen]
		}
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

// probs returns the calibrated probability of each class for text. The
// virtual none class takes the rest: the probability that the message is
// about none of the intents.
func (c *Classifier) probs(text string) []float64 {
	z := make([]float64, len(c.intents)+1)
	c.m.logits(text, z[:len(c.intents)])
	for k := range c.intents {
		z[k] /= c.temp
	}
	z[len(c.intents)] = c.none
	softmax(z)
	return z[:len(c.intents)]
}

// judge returns the best in-scope intent for text, its probability, and
// whether the out-of-scope class beats it; for evaluation at any
// threshold.
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
	feat  *featurizer
	lin   *linearModel
	near  *neighbours
	nearW float64
}

// fit trains a model on texts labelled with classes 0..K-1 (some may have
// no examples).
func fit(texts []string, y []int, K int, opt ClassifierOptions) *model {
	feat := newFeaturizer(defaultFeatures, texts)
	X := make([]sparseVec, len(texts))
	for i, t := range texts {
		X[i] = feat.vector(t)
	}
	lins := make([]*linearModel, bags)
	var wg sync.WaitGroup
	for b := range lins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := opt
			o.Seed += uint64(b) * 104729
			lins[b] = trainSoftmax(X, y, K, feat.dim(), o)
		}()
	}
	wg.Wait()
	// Averaging the weights averages the logits.
	lin := lins[0]
	for _, other := range lins[1:] {
		for i, v := range other.w {
			lin.w[i] += v
		}
		for i, v := range other.b {
			lin.b[i] += v
		}
	}
	for i := range lin.w {
		lin.w[i] /= bags
	}
	for i := range lin.b {
		lin.b[i] /= bags
	}
	return &model{
		feat: feat,
		lin:  lin,
		near: newNeighbours(X, y, K, feat.dim(), max(20, int(float64(len(X))*neighbourMaxDF))),
		// Relative to the norm of a vector whose n-grams are all known.
		nearW: neighbourWeight / math.Hypot(defaultFeatures.wordWeight, defaultFeatures.charWeight),
	}
}

// logits sets z (length K) to the class scores of text.
func (m *model) logits(text string, z []float64) {
	x := m.feat.vector(text)
	m.lin.logits(x, z)
	m.near.addSims(x, m.nearW, z)
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
			eta := learningRate * (1 - t/total)
			t++
			x := X[i]
			x = dropout(x, dropoutRate, rng, &dropped)
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
	scratch  sync.Pool // of *simScratch
}

type posting struct {
	doc int32
	val float32
}

// newNeighbours indexes the training vectors. N-grams found in more than
// maxDF of them are left out of the index: they are the bulk of the work
// and say little about which example is nearest. (The norms still count
// them, so similarities are slightly underestimated, alike for all.)
func newNeighbours(X []sparseVec, y []int, K, F int, maxDF int) *neighbours {
	n := &neighbours{k: K, label: make([]int32, len(X)), norm: make([]float32, len(X)), postings: make([][]posting, F)}
	df := make([]int32, F)
	for _, x := range X {
		for _, f := range x.idx {
			df[f]++
		}
	}
	for d, x := range X {
		n.label[d] = int32(y[d])
		var ss float32
		for j, f := range x.idx {
			if maxDF <= 0 || int(df[f]) <= maxDF {
				n.postings[f] = append(n.postings[f], posting{int32(d), x.val[j]})
			}
			ss += x.val[j] * x.val[j]
		}
		n.norm[d] = float32(math.Sqrt(float64(ss)))
	}
	return n
}

// addSims adds to z, for each class, w times the highest dot product of x
// with one of its training examples, normalised.
func (n *neighbours) addSims(x sparseVec, w float64, z []float64) {
	sc, _ := n.scratch.Get().(*simScratch)
	if sc == nil {
		sc = &simScratch{acc: make([]float32, len(n.label))}
	}
	acc, touched := sc.acc, sc.touched[:0]
	for j, f := range x.idx {
		q := x.val[j]
		for _, p := range n.postings[f] {
			if acc[p.doc] == 0 {
				touched = append(touched, p.doc)
			}
			acc[p.doc] += q * p.val
		}
	}
	best := make([]float32, n.k)
	for _, d := range touched {
		if s := acc[d] / n.norm[d]; s > best[n.label[d]] {
			best[n.label[d]] = s
		}
		acc[d] = 0
	}
	sc.touched = touched
	n.scratch.Put(sc)
	for k, s := range best {
		z[k] += w * float64(s)
	}
}

// simScratch is a reusable accumulator for addSims; acc is all zeros
// between uses.
type simScratch struct {
	acc     []float32
	touched []int32
}
