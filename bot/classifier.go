package bot

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"

	"github.com/tandem-chat/tandem/internal/errs"
)

// IntentNone is the intent Predict returns for a message that is out of
// scope or that the classifier is not confident about.
const IntentNone = "none"

// IntentOOS is the label of out-of-scope training and test examples.
const IntentOOS = "oos"

// Example is one labelled phrase.
type Example struct {
	Text   string
	Intent string
}

// Scored is an intent with its score (a probability).
type Scored struct {
	Intent string
	Score  float64
}

// Prediction is the classifier's best guess.
type Prediction struct {
	Intent     string
	Confidence float64
	Ranked     []Scored // top few intents, best first
}

// ClassifierOptions tunes training; the zero value gives defaults.
type ClassifierOptions struct {
	Epochs    int
	L2        float64
	Threshold float64
	Seed      uint64

	feat featureConfig
	eta0 float64
	knn  float64 // weight of the nearest-neighbour similarity in the logits
	drop float64 // feature dropout rate during training
}

// Classifier is a trained intent classifier.
type Classifier struct {
	feat      *featurizer
	intents   []string
	oos       int // index of the out-of-scope class, or -1
	model     *linearModel
	temp      float64
	threshold float64
	knnWeight float64
	index     *neighbours
}

func (o ClassifierOptions) withDefaults() ClassifierOptions {
	if o.Epochs == 0 {
		o.Epochs = 10
	}
	if o.L2 == 0 {
		o.L2 = 1e-5
	}
	if o.eta0 == 0 {
		o.eta0 = 1
	}
	if o.feat == (featureConfig{}) {
		o.feat = featureConfig{wordMaxN: 2, charMinN: 2, charMaxN: 5, wordWeight: 1, charWeight: 1, minDF: 1}
	}
	if o.Threshold == 0 {
		o.Threshold = 0.5
	}
	return o
}

// TrainClassifier trains a classifier from labelled examples.
func TrainClassifier(examples []Example, opt ClassifierOptions) (*Classifier, error) {
	if len(examples) == 0 {
		return nil, errs.Errorf(errs.Invalid, "intent classifier: no examples")
	}
	opt = opt.withDefaults()
	texts := make([]string, len(examples))
	classOf := map[string]int{}
	var intents []string
	for _, e := range examples {
		if _, ok := classOf[e.Intent]; !ok {
			classOf[e.Intent] = -1
			intents = append(intents, e.Intent)
		}
	}
	sort.Strings(intents)
	for i, n := range intents {
		classOf[n] = i
	}
	y := make([]int, len(examples))
	for i, e := range examples {
		texts[i] = e.Text
		y[i] = classOf[e.Intent]
	}
	c := &Classifier{intents: intents, oos: -1, temp: 1, threshold: opt.Threshold}
	if i, ok := classOf[IntentOOS]; ok {
		c.oos = i
	}
	c.feat = newFeaturizer(opt.feat, texts)
	X := make([]sparseVec, len(texts))
	for i, t := range texts {
		X[i] = c.feat.vector(t)
	}
	c.model = trainSoftmax(X, y, len(intents), c.feat.dim(), opt)
	if opt.knn != 0 {
		c.knnWeight = opt.knn
		c.index = newNeighbours(X, y, len(intents), c.feat.dim())
	}
	return c, nil
}

// Intents returns the intents the classifier knows, sorted.
func (c *Classifier) Intents() []string {
	var out []string
	for i, n := range c.intents {
		if i != c.oos {
			out = append(out, n)
		}
	}
	return out
}

// Predict classifies text. It is safe for concurrent use.
func (c *Classifier) Predict(text string) Prediction {
	z := c.probs(text)
	ranked := make([]Scored, 0, len(z))
	for k, p := range z {
		if k != c.oos {
			ranked = append(ranked, Scored{Intent: c.intents[k], Score: p})
		}
	}
	slices.SortStableFunc(ranked, func(a, b Scored) int {
		switch {
		case a.Score > b.Score:
			return -1
		case a.Score < b.Score:
			return 1
		}
		return 0
	})
	if len(ranked) > 5 {
		ranked = ranked[:5]
	}
	p := Prediction{Intent: IntentNone, Ranked: ranked}
	if len(ranked) == 0 {
		return p
	}
	p.Confidence = ranked[0].Score
	if p.Confidence >= c.threshold && (c.oos < 0 || z[c.oos] < p.Confidence) {
		p.Intent = ranked[0].Intent
	}
	return p
}

// probs returns the probability of each class for text.
func (c *Classifier) probs(text string) []float64 {
	x := c.feat.vector(text)
	z := make([]float64, len(c.intents))
	c.model.logits(x, z)
	if c.index != nil {
		sims := c.index.classSims(x)
		for k := range z {
			z[k] += c.knnWeight * sims[k]
		}
	}
	for k := range z {
		z[k] /= c.temp
	}
	softmax(z)
	return z
}

// judge returns the best in-scope intent for text, its probability, and
// whether the out-of-scope class beats it.
func (c *Classifier) judge(text string) (intent string, conf float64, oosWins bool) {
	z := c.probs(text)
	best := -1
	for k, p := range z {
		if k != c.oos && (best < 0 || p > z[best]) {
			best = k
		}
	}
	if best < 0 {
		return IntentNone, 0, true
	}
	return c.intents[best], z[best], c.oos >= 0 && z[c.oos] >= z[best]
}

// linearModel is a multinomial logistic regression over sparse features;
// w holds one row of k weights per feature.
type linearModel struct {
	k int
	w []float32
	b []float32
}

func (m *linearModel) logits(x sparseVec, out []float64) {
	for k := range out {
		out[k] = float64(m.b[k])
	}
	for i, f := range x.idx {
		xv := float64(x.val[i])
		row := m.w[int(f)*m.k : int(f)*m.k+m.k]
		for k, wv := range row {
			out[k] += xv * float64(wv)
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

// trainSoftmax fits a multinomial logistic regression with SGD and L2.
func trainSoftmax(X []sparseVec, y []int, K, F int, opt ClassifierOptions) *linearModel {
	m := &linearModel{k: K, w: make([]float32, F*K), b: make([]float32, K)}
	rng := rand.New(rand.NewPCG(opt.Seed, 0x7a4d))
	order := make([]int, len(X))
	for i := range order {
		order[i] = i
	}
	z := make([]float64, K)
	g := make([]float32, K)
	scale := 1.0
	var dx sparseVec
	lambda := opt.L2
	total := float64(opt.Epochs * len(X))
	t := 0.0
	for ep := 0; ep < opt.Epochs; ep++ {
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for _, i := range order {
			eta := opt.eta0 * (1 - t/total)
			t++
			x := X[i]
			if opt.drop > 0 {
				x = dropout(x, opt.drop, rng, &dx)
			}
			for k := range z {
				z[k] = 0
			}
			for j, f := range x.idx {
				xv := float64(x.val[j])
				row := m.w[int(f)*K : int(f)*K+K]
				for k, wv := range row {
					z[k] += xv * float64(wv)
				}
			}
			for k := range z {
				z[k] = z[k]*scale + float64(m.b[k])
			}
			softmax(z)
			z[y[i]] -= 1
			scale *= 1 - eta*lambda
			for k := range g {
				g[k] = float32(eta * z[k] / scale)
				m.b[k] -= float32(eta * z[k] * 0.1)
			}
			for j, f := range x.idx {
				xv := x.val[j]
				row := m.w[int(f)*K : int(f)*K+K]
				for k := range row {
					row[k] -= g[k] * xv
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

var _ = fmt.Sprintf

// neighbours is an inverted index of the training vectors, for cosine
// similarity to the nearest example of each class.
type neighbours struct {
	k        int
	label    []int32
	postings [][]posting
}

type posting struct {
	doc int32
	val float32
}

func newNeighbours(X []sparseVec, y []int, K, F int) *neighbours {
	n := &neighbours{k: K, label: make([]int32, len(X)), postings: make([][]posting, F)}
	for d, x := range X {
		n.label[d] = int32(y[d])
		for j, f := range x.idx {
			n.postings[f] = append(n.postings[f], posting{int32(d), x.val[j]})
		}
	}
	return n
}

// classSims returns, for each class, the highest cosine similarity between
// x and one of its training examples.
func (n *neighbours) classSims(x sparseVec) []float64 {
	acc := make([]float32, len(n.label))
	var qq float32
	for j, f := range x.idx {
		q := x.val[j]
		qq += q * q
		for _, p := range n.postings[f] {
			acc[p.doc] += q * p.val
		}
	}
	sims := make([]float64, n.k)
	if qq == 0 {
		return sims
	}
	for d, a := range acc {
		// Training vectors have norm sqrt(2) (two blocks of norm 1).
		s := float64(a) / 2
		if l := n.label[d]; s > sims[l] {
			sims[l] = s
		}
	}
	return sims
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
