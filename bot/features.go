package bot

import (
	"math"
	"slices"
	"unicode"
)

// This file turns text into sparse TF-IDF vectors for the intent classifier.
//
// Two blocks of features are used: word n-grams and character n-grams taken
// inside word boundaries ("char_wb" style: each word padded with a space on
// both sides). A run of CJK characters counts as one "word" for character
// n-grams and as one word per character for word n-grams, so Chinese works
// without a segmenter. N-grams are hashed to 64 bits (collisions are
// negligible) and mapped to columns by a vocabulary built from the training
// examples.

// featureConfig holds the feature extraction settings.
type featureConfig struct {
	wordMaxN   int     // word n-grams 1..wordMaxN
	charMinN   int     // character n-grams charMinN..charMaxN
	charMaxN   int     //
	wordWeight float64 // L2 norm of the word block
	charWeight float64 // L2 norm of the character block
	minDF      int     // drop n-grams seen in fewer training examples
	// unseenWeight counts n-grams missing from the vocabulary in each
	// block's norm (as a fraction of the highest idf), so a message made
	// mostly of unknown text gets a short vector and a low confidence.
	unseenWeight float64
}

// defaultFeatures are the settings that measured best on held-out parts of
// the public intent data sets.
var defaultFeatures = featureConfig{
	wordMaxN: 2, charMinN: 2, charMaxN: 5,
	wordWeight: 1, charWeight: 1,
	minDF: 1, unseenWeight: 1,
}

// sparseVec is a sparse feature vector.
type sparseVec struct {
	idx []int32
	val []float32
}

// featurizer maps text to TF-IDF vectors with a fixed vocabulary.
type featurizer struct {
	cfg   featureConfig
	index map[uint64]int32 // hashed n-gram -> column
	idf   []float32
	// maxIDF is the idf an n-gram seen in no training example would have.
	maxIDF float64
}

// Block tags mixed into the hashes so that word and character n-grams of the
// same text never share a column.
const (
	blockWord uint64 = 0x9e3779b97f4a7c15
	blockChar uint64 = 0xc2b2ae3d27d4eb4f
)

const (
	fnvOffset uint64 = 14695981039346656037
	fnvPrime  uint64 = 1099511628211
)

// token is a word or a run of CJK characters in normalized text.
type token struct {
	runes []rune
	cjk   bool
}

// isCJK reports whether r belongs to a script written without spaces.
func isCJK(r rune) bool {
	return unicode.Is(unicode.Han, r) || unicode.Is(unicode.Hiragana, r) ||
		unicode.Is(unicode.Katakana, r) || unicode.Is(unicode.Thai, r)
}

// foldRune lower-cases r and maps full-width ASCII forms to ASCII.
func foldRune(r rune) rune {
	if r >= 0xFF01 && r <= 0xFF5E {
		r -= 0xFEE0
	}
	switch r {
	case '’', '‘', '`', '´':
		r = '\''
	}
	return unicode.ToLower(r)
}

// tokenize splits text into words and CJK runs, dropping punctuation. An
// apostrophe is kept inside a word ("don't").
func tokenize(text string) []token {
	var toks []token
	buf := make([]rune, 0, len(text))
	start, cjk := 0, false
	flush := func() {
		end := len(buf)
		for end > start && buf[end-1] == '\'' {
			end--
		}
		if end > start {
			toks = append(toks, token{runes: buf[start:end:end], cjk: cjk})
		}
		buf = buf[:end]
		start = len(buf)
	}
	for _, r := range text {
		r = foldRune(r)
		switch {
		case isCJK(r):
			if !cjk {
				flush()
				cjk = true
			}
			buf = append(buf, r)
		case unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r):
			if cjk {
				flush()
				cjk = false
			}
			buf = append(buf, r)
		case r == '\'' && !cjk && len(buf) > start:
			buf = append(buf, r)
		default:
			flush()
			cjk = false
		}
	}
	flush()
	return toks
}

// hashRunes continues an FNV-1a hash over runes.
func hashRunes(h uint64, rs []rune) uint64 {
	for _, r := range rs {
		h ^= uint64(r)
		h *= fnvPrime
	}
	return h
}

// mix finalizes a hash so nearby inputs spread over all 64 bits.
func mix(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// ngramKeys appends the hashed word and character n-gram keys of text to
// words and chars, one key per occurrence.
func (cfg *featureConfig) ngramKeys(text string, words, chars []uint64) ([]uint64, []uint64) {
	toks := tokenize(text)
	// Word units: each word, or each character of a CJK run.
	units := make([]uint64, 0, len(toks)*2)
	for _, t := range toks {
		if t.cjk {
			for i := range t.runes {
				units = append(units, hashRunes(fnvOffset, t.runes[i:i+1]))
			}
			continue
		}
		units = append(units, hashRunes(fnvOffset, t.runes))
	}
	for i := range units {
		h := blockWord
		for n := 1; n <= cfg.wordMaxN && i+n <= len(units); n++ {
			h = (h ^ units[i+n-1]) * fnvPrime
			words = append(words, mix(h+uint64(n)))
		}
	}
	var padded []rune
	for _, t := range toks {
		padded = append(padded[:0], ' ')
		padded = append(padded, t.runes...)
		padded = append(padded, ' ')
		for i := range padded {
			h := fnvOffset ^ blockChar
			for n := 1; n <= cfg.charMaxN && i+n <= len(padded); n++ {
				h = (h ^ uint64(padded[i+n-1])) * fnvPrime
				if n >= cfg.charMinN && !(n == 1 && padded[i] == ' ') {
					chars = append(chars, mix(h+uint64(n)))
				}
			}
		}
	}
	return words, chars
}

// uniqueKeys sorts keys and removes duplicates in place.
func uniqueKeys(keys []uint64) []uint64 {
	slices.Sort(keys)
	return slices.Compact(keys)
}

// newFeaturizer builds the vocabulary and idf weights from training texts.
func newFeaturizer(cfg featureConfig, texts []string) *featurizer {
	df := make(map[uint64]int32, len(texts)*64)
	var words, chars []uint64
	for _, t := range texts {
		words, chars = cfg.ngramKeys(t, words[:0], chars[:0])
		for _, k := range uniqueKeys(words) {
			df[k]++
		}
		for _, k := range uniqueKeys(chars) {
			df[k]++
		}
	}
	minDF := int32(max(cfg.minDF, 1))
	keys := make([]uint64, 0, len(df))
	for k, n := range df {
		if n >= minDF {
			keys = append(keys, k)
		}
	}
	// Sorted so that the column order (and so training) is deterministic.
	slices.Sort(keys)
	f := &featurizer{
		cfg:    cfg,
		index:  make(map[uint64]int32, len(keys)),
		idf:    make([]float32, len(keys)),
		maxIDF: math.Log(float64(1+len(texts))) + 1,
	}
	for i, k := range keys {
		f.index[k] = int32(i)
		// Smooth idf, as in scikit-learn.
		f.idf[i] = float32(math.Log(float64(1+len(texts))/float64(1+df[k])) + 1)
	}
	return f
}

// dim is the number of columns.
func (f *featurizer) dim() int { return len(f.idf) }

// vector returns the TF-IDF vector of text: sublinear tf, each block scaled
// to its configured L2 norm.
func (f *featurizer) vector(text string) sparseVec {
	words, chars := f.cfg.ngramKeys(text, nil, nil)
	var v sparseVec
	v = f.appendBlock(v, words, f.cfg.wordWeight)
	v = f.appendBlock(v, chars, f.cfg.charWeight)
	return v
}

// appendBlock appends the weighted, normalized features of one block.
func (f *featurizer) appendBlock(v sparseVec, keys []uint64, weight float64) sparseVec {
	if weight <= 0 || len(keys) == 0 {
		return v
	}
	slices.Sort(keys)
	start := len(v.idx)
	var norm2 float64
	unseen := f.cfg.unseenWeight * f.maxIDF
	for i := 0; i < len(keys); {
		j := i + 1
		for j < len(keys) && keys[j] == keys[i] {
			j++
		}
		tf := 1 + math.Log(float64(j-i))
		if col, ok := f.index[keys[i]]; ok {
			w := tf * float64(f.idf[col])
			v.idx = append(v.idx, col)
			v.val = append(v.val, float32(w))
			norm2 += w * w
		} else {
			norm2 += tf * tf * unseen * unseen
		}
		i = j
	}
	if norm2 == 0 {
		return v
	}
	scale := float32(weight / math.Sqrt(norm2))
	for i := start; i < len(v.val); i++ {
		v.val[i] *= scale
	}
	return v
}
