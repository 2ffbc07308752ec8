package retrieval

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tandem-chat/tandem/internal/errs"
	"github.com/tandem-chat/tandem/internal/llmfake"
)

func newFakeEmbedder(t *testing.T, cfg OpenAIConfig) (*llmfake.Server, *OpenAI) {
	t.Helper()
	s := llmfake.New()
	t.Cleanup(s.Close)
	cfg.BaseURL = s.URL() + "/" // a trailing slash is tolerated
	if cfg.Model == "" {
		cfg.Model = "fake-embedding"
	}
	e := NewOpenAI(cfg)
	e.backoff = time.Millisecond
	return s, e
}

func TestOpenAIEmbed(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		s, e := newFakeEmbedder(t, OpenAIConfig{APIKey: "k"})
		// The vector of "t<n>" encodes n, so order can be checked.
		s.SetEmbed(func(text string) []float32 {
			n, _ := strconv.Atoi(strings.TrimPrefix(text, "t"))
			return []float32{float32(n), 3, 4}
		})
		if e.Dim() != 0 || e.Name() != "fake-embedding" {
			t.Fatalf("before any call: dim %d, name %q", e.Dim(), e.Name())
		}
		texts := make([]string, 150)
		for i := range texts {
			texts[i] = fmt.Sprintf("t%d", i)
		}
		vecs, err := e.Embed(context.Background(), texts)
		if err != nil {
			t.Fatal(err)
		}
		if len(vecs) != 150 || e.Dim() != 3 {
			t.Fatalf("got %d vectors, dim %d", len(vecs), e.Dim())
		}
		for i, v := range vecs {
			norm := math.Sqrt(float64(v[0]*v[0] + v[1]*v[1] + v[2]*v[2]))
			if math.Abs(norm-1) > 1e-5 {
				t.Fatalf("vector %d has norm %v", i, norm)
			}
			if got := math.Round(float64(v[0] / v[1] * 3)); got != float64(i) {
				t.Fatalf("vector %d encodes %v: order lost", i, got)
			}
		}
		var sizes []int
		for _, r := range s.Requests() {
			sizes = append(sizes, len(r.Inputs))
			if r.Header.Get("Authorization") != "Bearer k" || r.Model != "fake-embedding" {
				t.Errorf("request auth %q model %q", r.Header.Get("Authorization"), r.Model)
			}
		}
		if fmt.Sprint(sizes) != "[64 64 22]" {
			t.Errorf("batch sizes = %v, want [64 64 22]", sizes)
		}
	})
	t.Run("EmptyText", func(t *testing.T) {
		s, e := newFakeEmbedder(t, OpenAIConfig{})
		vecs, err := e.Embed(context.Background(), []string{"", "a"})
		if err != nil {
			t.Fatal(err)
		}
		if len(vecs) != 2 || len(vecs[0]) != llmfake.DefaultEmbeddingDim {
			t.Fatalf("vectors = %d", len(vecs))
		}
		if in := s.Requests()[0].Inputs; in[0] != " " {
			t.Errorf("empty text sent as %q", in[0])
		}
	})
	t.Run("NoTexts", func(t *testing.T) {
		s, e := newFakeEmbedder(t, OpenAIConfig{})
		vecs, err := e.Embed(context.Background(), nil)
		if err != nil || len(vecs) != 0 || len(s.Requests()) != 0 {
			t.Errorf("vecs %v, err %v, %d requests", vecs, err, len(s.Requests()))
		}
	})
	for _, status := range []int{http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable} {
		t.Run("Retry"+strconv.Itoa(status), func(t *testing.T) {
			s, e := newFakeEmbedder(t, OpenAIConfig{})
			s.FailNext(2, status)
			if _, err := e.Embed(context.Background(), []string{"a"}); err != nil {
				t.Fatal(err)
			}
			if n := len(s.Requests()); n != 3 {
				t.Errorf("%d requests, want 3", n)
			}
		})
	}
	t.Run("RetryTimeout", func(t *testing.T) {
		s, e := newFakeEmbedder(t, OpenAIConfig{Timeout: 50 * time.Millisecond, Retries: 1})
		s.SetLatency(time.Second)
		go func() {
			// Let the first call time out, then answer quickly.
			for len(s.Requests()) == 0 {
				time.Sleep(time.Millisecond)
			}
			s.SetLatency(0)
		}()
		if _, err := e.Embed(context.Background(), []string{"a"}); err != nil {
			t.Fatal(err)
		}
		if n := len(s.Requests()); n != 2 {
			t.Errorf("%d requests, want 2", n)
		}
	})
	t.Run("ErrUnavailable", func(t *testing.T) {
		s, e := newFakeEmbedder(t, OpenAIConfig{Retries: 2})
		s.FailNext(10, http.StatusServiceUnavailable)
		_, err := e.Embed(context.Background(), []string{"a"})
		if errs.CodeOf(err) != errs.Unavailable {
			t.Errorf("err = %v, want code unavailable", err)
		}
		if n := len(s.Requests()); n != 3 {
			t.Errorf("%d requests, want 1 + 2 retries", n)
		}
	})
	t.Run("ErrNotRetried", func(t *testing.T) {
		s, e := newFakeEmbedder(t, OpenAIConfig{})
		s.FailNext(1, http.StatusBadRequest)
		_, err := e.Embed(context.Background(), []string{"a"})
		if errs.CodeOf(err) != errs.Unavailable {
			t.Errorf("err = %v, want code unavailable", err)
		}
		if n := len(s.Requests()); n != 1 {
			t.Errorf("%d requests, want 1: a 400 is not retried", n)
		}
	})
	t.Run("ErrNoRetries", func(t *testing.T) {
		s, e := newFakeEmbedder(t, OpenAIConfig{Retries: -1})
		s.FailNext(1, http.StatusTooManyRequests)
		if _, err := e.Embed(context.Background(), []string{"a"}); errs.CodeOf(err) != errs.Unavailable {
			t.Errorf("err = %v, want code unavailable", err)
		}
		if n := len(s.Requests()); n != 1 {
			t.Errorf("%d requests, want 1", n)
		}
	})
	t.Run("ErrTimeout", func(t *testing.T) {
		s, e := newFakeEmbedder(t, OpenAIConfig{Timeout: 20 * time.Millisecond, Retries: 1})
		s.SetLatency(time.Second)
		_, err := e.Embed(context.Background(), []string{"a"})
		if errs.CodeOf(err) != errs.Unavailable || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want unavailable after a deadline", err)
		}
		if n := len(s.Requests()); n != 2 {
			t.Errorf("%d requests, want 2", n)
		}
	})
	t.Run("ErrCanceled", func(t *testing.T) {
		s, e := newFakeEmbedder(t, OpenAIConfig{})
		s.SetLatency(time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		_, err := e.Embed(ctx, []string{"a"})
		if !errors.Is(err, context.DeadlineExceeded) || errs.CodeOf(err) == errs.Unavailable {
			t.Errorf("err = %v, want the caller's deadline, not unavailable", err)
		}
		if n := len(s.Requests()); n != 1 {
			t.Errorf("%d requests, want no retry once the caller gave up", n)
		}
	})
	t.Run("ErrDimMismatch", func(t *testing.T) {
		_, e := newFakeEmbedder(t, OpenAIConfig{Dim: 8})
		_, err := e.Embed(context.Background(), []string{"a"})
		if errs.CodeOf(err) != errs.Unavailable || !strings.Contains(err.Error(), "want 8") {
			t.Errorf("err = %v, want unavailable naming the length", err)
		}
	})
	t.Run("ErrUnreachable", func(t *testing.T) {
		s, e := newFakeEmbedder(t, OpenAIConfig{Retries: 1})
		s.Close()
		if _, err := e.Embed(context.Background(), []string{"a"}); errs.CodeOf(err) != errs.Unavailable {
			t.Errorf("err = %v, want unavailable", err)
		}
	})
}
