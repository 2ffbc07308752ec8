package retrieval

import (
	"context"
	"math"
	"slices"
	"sync"
	"unicode/utf8"
)

// Local is the deterministic local embedder: no network, no model file, no
// corpus statistics. It hashes word unigrams and bigrams and character
// n-grams into a fixed number of signed buckets, so Chinese (which has no
// spaces) and typos in English still share features with their matches.
// It is safe for concurrent use.
type Local struct {
	p localParams
}

var _ Embedder = (*Local)(nil)

// localParams are the knobs of the local embedder; defaultLocalParams holds
// the values chosen by measurement (see the retrieval evaluation tests).
type localParams struct {
	dim int // power of two

	// Words of spaced scripts.
	word, wordBigram float64
	gramMin, gramMax int     // character n-grams of "<word>", in runes
	gram             float64 // weight of one word's character n-grams

	// Runs of dense scripts (Chinese, Japanese, ...).
	uni, bi, tri, skip float64

	stop    float64 // weight factor for English function words
	stopCJK float64 // weight factor for Chinese function characters
}

var defaultLocalParams = localParams{
	dim:  512,
	word: 1, wordBigram: 0.5,
	gramMin: 3, gramMax: 5, gram: 1,
	uni: 0.5, bi: 1, tri: 0.5, skip: 0.3,
	stop: 0.3, stopCJK: 1,
}

// NewLocal returns the deterministic local embedder (no network).
func NewLocal() *Local { return &Local{p: defaultLocalParams} }

// Name returns the model name recorded with each chunk. It changes whenever
// the features, weights or dimension change, because vectors from two
// versions are not comparable.
func (l *Local) Name() string { return "local-hash-v1" }

// Dim returns the vector length.
func (l *Local) Dim() int { return l.p.dim }

// Embed returns one L2-normalised vector per text. A text without any word
// character gets the zero vector. It never fails unless ctx is done.
func (l *Local) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, len(texts))
	for i, t := range texts {
		if i%64 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		out[i] = l.embed(t)
	}
	return out, nil
}

// feature is one hashed feature occurrence with its weight.
type feature struct {
	h uint64
	w float32
}

var featurePool = sync.Pool{New: func() any { s := make([]feature, 0, 256); return &s }}

// embed returns the vector of one text.
func (l *Local) embed(text string) []float32 {
	fp := featurePool.Get().(*[]feature)
	fs := l.features(text, (*fp)[:0])
	v := make([]float32, l.p.dim)
	mask := uint64(l.p.dim - 1)

	// Count repeated features (equal hashes are equal features, bar
	// 64-bit collisions) and add each once with sublinear tf.
	slices.SortFunc(fs, func(a, b feature) int {
		switch {
		case a.h < b.h:
			return -1
		case a.h > b.h:
			return 1
		}
		return 0
	})
	for i := 0; i < len(fs); {
		j := i + 1
		for j < len(fs) && fs[j].h == fs[i].h {
			j++
		}
		w := fs[i].w * float32(1+math.Log(float64(j-i)))
		h := fs[i].h
		// Signed hashing: collisions cancel out on average instead of
		// piling up, which keeps dot products unbiased.
		if h>>63 != 0 {
			w = -w
		}
		v[(h>>32)&mask] += w
		i = j
	}
	*fp = fs
	featurePool.Put(fp)
	normalizeL2(v)
	return v
}

// Feature kinds seed the hash so that, say, the word "an" and the
// character bigram "an" are different features.
const (
	kindWord uint64 = iota + 1
	kindWordBigram
	kindGram
	kindUni
	kindBi
	kindTri
	kindSkip
)

// features appends text's weighted features to fs.
func (l *Local) features(text string, fs []feature) []feature {
	p := &l.p
	var prevWord uint64 // hash of the previous spaced-script word, 0 at a boundary
	var buf [64]byte
	forEachRun(text, func(run string, dense bool) {
		if dense {
			prevWord = 0
			fs = l.denseFeatures(run, fs)
			return
		}
		w := stem(run)
		sw := float32(1)
		if stopWords[w] {
			sw = float32(p.stop)
		}
		hw := hashString(kindWord, w)
		fs = append(fs, feature{hw, float32(p.word) * sw})
		if prevWord != 0 && p.wordBigram > 0 {
			fs = append(fs, feature{mix(kindWordBigram, prevWord, hw), float32(p.wordBigram) * sw})
		}
		prevWord = hw
		if p.gram == 0 {
			return
		}
		// Character n-grams of "<run>" (unstemmed, so "cards" still
		// shares "ards" with "boards"), their total weight p.gram.
		b := buf[:0]
		if len(run)+2 <= len(buf) {
			b = append(b, '<')
			b = append(b, run...)
			b = append(b, '>')
		} else {
			b = append(make([]byte, 0, len(run)+2), '<')
			b = append(b, run...)
			b = append(b, '>')
		}
		start := len(fs)
		for i := 0; i < len(b); {
			end, n := i, 0
			for end < len(b) && n < p.gramMax {
				_, m := utf8.DecodeRune(b[end:])
				end += m
				n++
				if n >= p.gramMin {
					fs = append(fs, feature{hashBytes(kindGram, b[i:end]), 0})
				}
			}
			_, m := utf8.DecodeRune(b[i:])
			i += m
		}
		if k := len(fs) - start; k > 0 {
			gw := float32(p.gram/math.Sqrt(float64(k))) * sw
			for i := start; i < len(fs); i++ {
				fs[i].w = gw
			}
		}
	})
	return fs
}

// denseFeatures appends the character 1-, 2- and 3-grams and the skip
// bigrams (a, c of "abc") of a run of a dense script.
func (l *Local) denseFeatures(run string, fs []feature) []feature {
	p := &l.p
	var rs [3]int // byte offsets of the last three runes
	n := 0
	for i, r := range run {
		_ = r
		rs[0], rs[1], rs[2] = rs[1], rs[2], i
		n++
		end := i + utf8.RuneLen(r)
		cur := run[i:end]
		sc := stopChar(r)
		if p.uni > 0 {
			fs = append(fs, feature{hashString(kindUni, cur), float32(p.uni) * stopFactor(p.stopCJK, sc)})
		}
		if n >= 2 && p.bi > 0 {
			prev, _ := utf8.DecodeRuneInString(run[rs[1]:])
			f := stopFactor2(p.stopCJK, stopChar(prev), sc)
			fs = append(fs, feature{hashString(kindBi, run[rs[1]:end]), float32(p.bi) * f})
		}
		if n >= 3 {
			a, _ := utf8.DecodeRuneInString(run[rs[0]:])
			b, _ := utf8.DecodeRuneInString(run[rs[1]:])
			if p.tri > 0 {
				f := stopFactor3(p.stopCJK, stopChar(a), stopChar(b), sc)
				fs = append(fs, feature{hashString(kindTri, run[rs[0]:end]), float32(p.tri) * f})
			}
			if p.skip > 0 {
				f := stopFactor2(p.stopCJK, stopChar(a), sc)
				fs = append(fs, feature{mix(kindSkip, uint64(a), uint64(r)), float32(p.skip) * f})
			}
		}
	}
	return fs
}

func stopFactor(stop float64, s bool) float32 {
	if s {
		return float32(stop)
	}
	return 1
}

// stopFactor2 weighs an n-gram of two characters: full weight unless both
// are function characters.
func stopFactor2(stop float64, a, b bool) float32 {
	if a && b {
		return float32(stop)
	}
	return 1
}

func stopFactor3(stop float64, a, b, c bool) float32 {
	if a && b && c {
		return float32(stop)
	}
	return 1
}

// FNV-1a, 64 bits, seeded with a feature kind.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func hashString(kind uint64, s string) uint64 {
	h := uint64(fnvOffset) ^ kind*0x9e3779b97f4a7c15
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return finalize(h)
}

func hashBytes(kind uint64, s []byte) uint64 {
	h := uint64(fnvOffset) ^ kind*0x9e3779b97f4a7c15
	for _, c := range s {
		h ^= uint64(c)
		h *= fnvPrime
	}
	return finalize(h)
}

// mix combines two hashes (or runes) into the hash of a pair feature.
func mix(kind, a, b uint64) uint64 {
	return finalize(a*0x9e3779b97f4a7c15 ^ (b+kind)*0xc2b2ae3d27d4eb4f ^ kind)
}

// finalize spreads FNV's weak high bits (murmur3's fmix64), since the
// bucket and the sign come from them.
func finalize(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// stopWords are English function words; they keep a small weight rather
// than none, since "not" or "how" sometimes matter.
var stopWords = map[string]bool{}

func init() {
	for _, w := range []string{
		"a", "an", "the", "and", "or", "but", "if", "of", "to", "in", "on", "at", "by", "for", "with", "from", "about", "as", "into", "than", "then",
		"i", "me", "my", "mine", "we", "us", "our", "you", "your", "he", "him", "his", "she", "her", "it", "its", "they", "them", "their",
		"is", "am", "are", "was", "were", "be", "been", "being", "do", "doe", "did", "doing", "have", "ha", "had", "having",
		"this", "that", "these", "those", "there", "here", "so", "too", "very", "just", "also",
		"can", "could", "would", "should", "will", "shall", "may", "might", "must",
		"what", "which", "who", "whom", "how", "when", "where", "why",
		"please", "hi", "hello", "hey", "thanks", "thank", "ok", "okay",
		"s", "t", "d", "ll", "m", "re", "ve", "im", "dont",
	} {
		stopWords[w] = true
	}
}

// stopChar reports whether r is a Chinese function character: particles,
// pronouns, question words and politeness that carry little topic.
func stopChar(r rune) bool {
	switch r {
	case '的', '了', '吗', '呢', '吧', '啊', '呀', '嘛', '哦', '哈', '啦', '么', '是', '我', '你', '您', '他', '她', '它', '们', '这', '那', '个', '在', '和', '与', '就', '都', '也', '请', '问', '怎', '什', '为', '可', '以', '能', '会', '要', '想', '有', '没', '好', '哪', '谁', '几', '多', '少', '一', '下', '不':
		return true
	}
	return false
}
