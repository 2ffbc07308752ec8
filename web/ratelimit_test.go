package web

import (
	"net"
	"testing"
	"time"
)

func TestRateLimiter(t *testing.T) {
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	l := newRateLimiter(6) // one every 10 s, 6 at once
	l.now = func() time.Time { return now }

	t.Run("Burst", func(t *testing.T) {
		for i := range 6 {
			if ok, _ := l.Allow("a"); !ok {
				t.Fatalf("request %d refused within the burst", i+1)
			}
		}
		ok, wait := l.Allow("a")
		if ok || wait != 10*time.Second {
			t.Fatalf("7th request: ok %v, wait %v; want refused for 10s", ok, wait)
		}
		if ok, _ := l.Allow("b"); !ok {
			t.Fatal("another key shares the first one's bucket")
		}
	})
	t.Run("Refill", func(t *testing.T) {
		now = now.Add(4 * time.Second)
		if ok, wait := l.Allow("a"); ok || wait != 6*time.Second {
			t.Fatalf("after 4 s: ok %v, wait %v; want 6 s more", ok, wait)
		}
		now = now.Add(6 * time.Second)
		if ok, _ := l.Allow("a"); !ok {
			t.Fatal("refused after the bucket earned a token")
		}
		if ok, _ := l.Allow("a"); ok {
			t.Fatal("one token earned, two spent")
		}
		now = now.Add(time.Hour)
		for i := range 6 {
			if ok, _ := l.Allow("a"); !ok {
				t.Fatalf("after an hour, request %d refused: the bucket holds at most the burst, not less", i+1)
			}
		}
		if ok, _ := l.Allow("a"); ok {
			t.Fatal("an idle hour saved up more than the burst")
		}
	})
	t.Run("Unlimited", func(t *testing.T) {
		var none *rateLimiter = newRateLimiter(0)
		for range 1000 {
			if ok, _ := none.Allow("x"); !ok {
				t.Fatal("a limit of 0 refused a request")
			}
		}
	})
	t.Run("BoundedMemory", func(t *testing.T) {
		m := newRateLimiter(60)
		m.now = l.now
		for i := range maxBuckets + 10 {
			m.Allow(string(rune(i)) + "k")
		}
		if n := len(m.buckets); n > maxBuckets {
			t.Fatalf("%d buckets kept, more than %d", n, maxBuckets)
		}
	})
	t.Run("RetryAfter", func(t *testing.T) {
		for _, tc := range []struct {
			d    time.Duration
			want int
		}{{0, 1}, {time.Millisecond, 1}, {time.Second, 1}, {1500 * time.Millisecond, 2}, {59 * time.Second, 59}} {
			if got := retryAfter(tc.d); got != tc.want {
				t.Errorf("retryAfter(%v) = %d, want %d", tc.d, got, tc.want)
			}
		}
	})
}

func TestClientAddr(t *testing.T) {
	ps := parseProxies([]string{"10.0.0.0/8", "192.0.2.7", "2001:db8::/32"})
	peer := func(s string) net.IP { return net.ParseIP(s) }
	for _, tc := range []struct {
		name, peer, forwarded, want string
	}{
		{"NoHeader", "203.0.113.9", "", "203.0.113.9"},
		{"UntrustedPeerIgnoresHeader", "203.0.113.9", "198.51.100.1", "203.0.113.9"},
		{"TrustedPeer", "10.1.2.3", "198.51.100.1", "198.51.100.1"},
		{"TrustedSingleAddress", "192.0.2.7", "198.51.100.1", "198.51.100.1"},
		{"ChainOfProxies", "10.1.2.3", "198.51.100.1, 10.9.9.9", "198.51.100.1"},
		{"SpoofedLeftmostIgnored", "10.1.2.3", "1.2.3.4, 198.51.100.1", "198.51.100.1"},
		{"GarbledHop", "10.1.2.3", "1.2.3.4, bogus, 10.9.9.9", "10.9.9.9"},
		{"OnlyProxies", "10.1.2.3", "10.4.4.4", "10.4.4.4"},
		{"IPv6", "2001:db8::1", "2001:db8::2, 2a00::1", "2a00::1"},
		{"IPv4Mapped", "::ffff:10.1.2.3", "198.51.100.1", "198.51.100.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := clientAddr(ps, peer(tc.peer), tc.forwarded); got != tc.want {
				t.Fatalf("clientAddr(%s, %q) = %s, want %s", tc.peer, tc.forwarded, got, tc.want)
			}
		})
	}
	if got := clientAddr(nil, peer("10.1.2.3"), "198.51.100.1"); got != "10.1.2.3" {
		t.Fatalf("without trusted proxies the header counts: %s", got)
	}
}

func TestBodyLimit(t *testing.T) {
	s := &Server{}
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{"POST", "/api/v1/conversations", customerBodyLimit},
		{"POST", "/api/v1/conversations?x=1", customerBodyLimit},
		{"POST", "/api/v1/conversations/abc/messages?wait=true", customerBodyLimit},
		{"POST", "/api/v1/conversations/abc/csat", customerBodyLimit},
		{"POST", "/api/v1/conversations/abc/claim", defaultBodyLimit},
		{"POST", "/api/v1/conversations/abc/attachments", 12 << 20},
		{"GET", "/api/v1/conversations/abc/attachments/def", defaultBodyLimit},
		{"POST", "/api/v1/knowledge/documents", 22 << 20},
		{"PUT", "/api/v1/knowledge/documents/abc", 22 << 20},
		{"POST", "/api/v1/knowledge/search", defaultBodyLimit},
		{"PUT", "/api/v1/intents", intentsBodyLimit},
		{"POST", "/api/v1/intents/import", intentsBodyLimit},
		{"GET", "/api/v1/knowledge/documents", defaultBodyLimit},
		{"POST", "/api/v1/auth/login", defaultBodyLimit},
		{"POST", "/", defaultBodyLimit},
	} {
		if got := s.bodyLimit(tc.method, tc.path); got != tc.want {
			t.Errorf("bodyLimit(%s %s) = %d, want %d", tc.method, tc.path, got, tc.want)
		}
	}
	if s.maxBodyLimit() < s.bodyLimit("POST", "/api/v1/knowledge/documents") {
		t.Error("the server's own bound is below a route's limit")
	}
}
