// Package retrieval owns embedders, text analysis for full-text search, and
// search over the knowledge base's chunks. It knows nothing of files:
// package knowledge hands it text.
package retrieval

import (
	"context"
	"math"
)

// Embedder turns texts into vectors for cosine similarity search.
type Embedder interface {
	// Embed returns one L2-normalised vector of length Dim() per text, in
	// order. Returns errs.Unavailable when a remote model fails.
	Embed(ctx context.Context, texts []string) ([][]float32, error)
	// Name is the model name recorded with each chunk, e.g. "local-hash-v1",
	// so vectors from different models are never compared.
	Name() string
	// Dim is the length of every vector. A remote embedder may report 0
	// until its first successful call.
	Dim() int
}

// Cosine returns the cosine similarity of a and b, which must have the same
// length; for L2-normalised vectors it is their dot product.
func Cosine(a, b []float32) float32 {
	var dot, na, nb float64
	for i := range a {
		dot += float64(a[i]) * float64(b[i])
		na += float64(a[i]) * float64(a[i])
		nb += float64(b[i]) * float64(b[i])
	}
	if na == 0 || nb == 0 {
		return 0
	}
	return float32(dot / math.Sqrt(na*nb))
}

// normalizeL2 scales v in place to unit length; a zero vector stays zero.
func normalizeL2(v []float32) {
	var ss float64
	for _, x := range v {
		ss += float64(x) * float64(x)
	}
	if ss == 0 {
		return
	}
	inv := float32(1 / math.Sqrt(ss))
	for i := range v {
		v[i] *= inv
	}
}
