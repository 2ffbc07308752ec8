package web

import (
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/tandem-chat/tandem/internal/errs"
)

// limiter counts failures per key in a sliding window; Allow is false once a
// key has had max failures within the window.
type limiter struct {
	mu     sync.Mutex
	max    int
	window time.Duration
	hits   map[string][]time.Time
	now    func() time.Time
}

func newLimiter(max int, window time.Duration) *limiter {
	return &limiter{max: max, window: window, hits: map[string][]time.Time{}, now: time.Now}
}

// Allow reports whether key may try again, and if not, after how long.
func (l *limiter) Allow(key string) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	hits := l.prune(key, now)
	if len(hits) >= l.max {
		return false, hits[0].Add(l.window).Sub(now)
	}
	return true, 0
}

// Fail records a failure for key.
func (l *limiter) Fail(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.hits[key] = append(l.prune(key, now), now)
	if len(l.hits) > 100000 {
		// Bound memory under a flood of distinct keys.
		for k := range l.hits {
			if len(l.prune(k, now)) == 0 {
				delete(l.hits, k)
			}
		}
	}
}

// Reset forgets key's failures (after a success).
func (l *limiter) Reset(key string) {
	l.mu.Lock()
	delete(l.hits, key)
	l.mu.Unlock()
}

func (l *limiter) prune(key string, now time.Time) []time.Time {
	hits := l.hits[key]
	i := 0
	for i < len(hits) && now.Sub(hits[i]) > l.window {
		i++
	}
	hits = hits[i:]
	if len(hits) == 0 {
		delete(l.hits, key)
	} else {
		l.hits[key] = hits
	}
	return hits
}

// rateLimiter is a token bucket per key: each key may spend burst requests
// at once and earns them back at perMinute per minute. It lives in this
// process: with several instances behind a load balancer a client may get
// up to one allowance per instance, which the limits are generous enough
// to allow. A nil rateLimiter allows everything.
type rateLimiter struct {
	mu      sync.Mutex
	perSec  float64
	burst   float64
	buckets map[string]*bucket
	now     func() time.Time
}

type bucket struct {
	tokens float64
	at     time.Time
}

// maxBuckets bounds the limiter's memory under a flood of distinct keys;
// past it, full (idle) buckets are forgotten.
const maxBuckets = 100000

// newRateLimiter returns a limiter of perMinute requests per minute per key,
// with a burst of as many; perMinute 0 means no limit (nil).
func newRateLimiter(perMinute int) *rateLimiter {
	if perMinute <= 0 {
		return nil
	}
	return &rateLimiter{perSec: float64(perMinute) / 60, burst: float64(perMinute),
		buckets: map[string]*bucket{}, now: time.Now}
}

// Allow spends one token of key's bucket if it has one; otherwise it reports
// how long until it will.
func (l *rateLimiter) Allow(key string) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= maxBuckets {
			l.forgetFull(now)
		}
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[key] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.at).Seconds()*l.perSec)
	b.at = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	// To the millisecond, so float error never shows as 5.999999999s.
	return false, time.Duration(math.Round((1-b.tokens)/l.perSec*1000)) * time.Millisecond
}

// forgetFull drops buckets that have refilled: forgetting them changes
// nothing. If every bucket is busy, an arbitrary half goes.
func (l *rateLimiter) forgetFull(now time.Time) {
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.at).Seconds()*l.perSec >= l.burst {
			delete(l.buckets, k)
		}
	}
	if len(l.buckets) < maxBuckets {
		return
	}
	n := 0
	for k := range l.buckets {
		delete(l.buckets, k)
		if n++; n >= maxBuckets/2 {
			return
		}
	}
}

// retryAfter renders a wait for the Retry-After header: whole seconds,
// at least one.
func retryAfter(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}

// rateLimited is the error a limited request gets; it sets Retry-After when
// c is not nil.
func rateLimited(c *fiber.Ctx, wait time.Duration, what string) error {
	secs := retryAfter(wait)
	if c != nil {
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(secs))
	}
	return errs.Errorf(errs.RateLimited, "too many %s; try again in %s", what, seconds(secs))
}

// seconds says n seconds in words.
func seconds(n int) string {
	if n == 1 {
		return "1 second"
	}
	return strconv.Itoa(n) + " seconds"
}
