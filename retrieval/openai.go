package retrieval

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/tandem-chat/tandem/internal/errs"
)

// OpenAIConfig configures an Embedder over an OpenAI-compatible endpoint.
type OpenAIConfig struct {
	BaseURL string // e.g. "https://api.openai.com/v1"; empty for OpenAI's
	APIKey  string
	Model   string // e.g. "text-embedding-3-small"

	// Dim is the expected vector length; a response of another length is
	// an error. 0 learns it from the first response.
	Dim int
	// BatchSize is the most texts sent in one request; 0 means 64.
	BatchSize int
	// Timeout bounds each request, retries apart; 0 means 30s.
	Timeout time.Duration
	// Retries is how many times a request that failed with 429, a 5xx
	// status, a timeout or a network error is tried again, with exponential
	// backoff; 0 means 2, negative means never.
	Retries int
}

// OpenAI is an Embedder over an OpenAI-compatible embeddings endpoint. It
// is safe for concurrent use.
type OpenAI struct {
	cfg     OpenAIConfig
	client  *openai.Client
	dim     atomic.Int64
	backoff time.Duration // first retry delay; doubles each time
}

var _ Embedder = (*OpenAI)(nil)

// NewOpenAI returns an Embedder over the endpoint cfg describes. It does
// not contact the endpoint.
func NewOpenAI(cfg OpenAIConfig) *OpenAI {
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 64
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Retries == 0 {
		cfg.Retries = 2
	} else if cfg.Retries < 0 {
		cfg.Retries = 0
	}
	oc := openai.DefaultConfig(cfg.APIKey)
	if cfg.BaseURL != "" {
		oc.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	}
	e := &OpenAI{cfg: cfg, client: openai.NewClientWithConfig(oc), backoff: 500 * time.Millisecond}
	e.dim.Store(int64(cfg.Dim))
	return e
}

// Name returns the model name.
func (e *OpenAI) Name() string { return e.cfg.Model }

// Dim returns the vector length: the configured one, or the one learned
// from the first response (0 before it).
func (e *OpenAI) Dim() int { return int(e.dim.Load()) }

// Embed returns one L2-normalised vector per text, sending at most
// BatchSize texts per request. Empty texts are sent as a single space,
// since the API rejects empty input. Returns errs.Unavailable when the
// endpoint fails after retries or answers with something unusable, and the
// context's error when ctx ends first.
func (e *OpenAI) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, 0, len(texts))
	for start := 0; start < len(texts); start += e.cfg.BatchSize {
		batch := texts[start:min(start+e.cfg.BatchSize, len(texts))]
		vecs, err := e.embedBatch(ctx, batch)
		if err != nil {
			return nil, err
		}
		out = append(out, vecs...)
	}
	return out, nil
}

// embedBatch embeds one batch, retrying transient failures.
func (e *OpenAI) embedBatch(ctx context.Context, batch []string) ([][]float32, error) {
	input := make([]string, len(batch))
	for i, t := range batch {
		if strings.TrimSpace(t) == "" {
			t = " "
		}
		input[i] = t
	}
	req := openai.EmbeddingRequestStrings{Input: input, Model: openai.EmbeddingModel(e.cfg.Model)}
	delay := e.backoff
	for attempt := 0; ; attempt++ {
		vecs, err := e.call(ctx, req)
		if err == nil {
			return vecs, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("retrieval: embed: %w", ctx.Err())
		}
		if attempt >= e.cfg.Retries || !retryable(err) {
			return nil, unavailable(err)
		}
		// Full jitter keeps many clients from retrying in step.
		wait := delay/2 + rand.N(delay/2+1)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("retrieval: embed: %w", ctx.Err())
		case <-t.C:
		}
		delay = min(delay*2, 10*time.Second)
	}
}

// call makes one request under the per-call timeout and checks the answer.
func (e *OpenAI) call(ctx context.Context, req openai.EmbeddingRequestStrings) ([][]float32, error) {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.Timeout)
	defer cancel()
	resp, err := e.client.CreateEmbeddings(ctx, req)
	if err != nil {
		return nil, err
	}
	if len(resp.Data) != len(req.Input) {
		return nil, fmt.Errorf("%w: got %d embeddings for %d inputs", errBadResponse, len(resp.Data), len(req.Input))
	}
	vecs := make([][]float32, len(req.Input))
	for _, d := range resp.Data {
		if d.Index < 0 || d.Index >= len(vecs) || vecs[d.Index] != nil {
			return nil, fmt.Errorf("%w: bad or repeated index %d", errBadResponse, d.Index)
		}
		vecs[d.Index] = d.Embedding
	}
	want := int(e.dim.Load())
	for _, v := range vecs {
		if len(v) == 0 {
			return nil, fmt.Errorf("%w: empty embedding", errBadResponse)
		}
		if want == 0 {
			// Learn the length once; concurrent first calls agree or the
			// loser's check below fails.
			e.dim.CompareAndSwap(0, int64(len(v)))
			want = int(e.dim.Load())
		}
		if len(v) != want {
			return nil, fmt.Errorf("%w: embedding of length %d, want %d", errBadResponse, len(v), want)
		}
		normalizeL2(v)
	}
	return vecs, nil
}

// errBadResponse marks an answer that arrived but cannot be used; it is
// not retried.
var errBadResponse = errors.New("unusable embeddings response")

// retryable reports whether err may pass on its own: rate limiting, a
// server error, a timeout or a network failure.
func retryable(err error) bool {
	var apiErr *openai.APIError
	if errors.As(err, &apiErr) {
		return retryableStatus(apiErr.HTTPStatusCode)
	}
	var reqErr *openai.RequestError
	if errors.As(err, &reqErr) {
		return retryableStatus(reqErr.HTTPStatusCode)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true // the per-call timeout; the caller's context is checked first
	}
	var urlErr *url.Error
	return errors.As(err, &urlErr)
}

func retryableStatus(code int) bool { return code == 429 || code >= 500 }

// unavailable wraps a final failure as errs.Unavailable, keeping the cause
// in the chain for logs and errors.Is.
func unavailable(err error) error {
	return fmt.Errorf("retrieval: embed: %w: %w", errs.Errorf(errs.Unavailable, "the embedding model is unavailable"), err)
}
