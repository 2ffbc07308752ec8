package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"
)

// Client speaks Tandem's public API to one instance.
type Client struct {
	Base string // http://host:port
	HTTP *http.Client
}

// NewClient returns a client with enough idle connections for concurrent use.
func NewClient(base string) *Client {
	return &Client{Base: base, HTTP: &http.Client{Timeout: 30 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256, IdleConnTimeout: time.Minute}}}
}

// Do sends a JSON request (body nil for none) with an optional bearer token
// and decodes a 2xx answer into out (when not nil).
func (c *Client) Do(ctx context.Context, method, path, token string, body, out any) error {
	_, err := Request(ctx, c.HTTP, c.Base, method, path, token, body, out)
	return err
}

// APIError is an error answer of the contract.
type APIError struct {
	Status     int
	Code       string
	Message    string
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message)
}

// Request sends one JSON request (body nil for none) to base with an
// optional bearer token and decodes a 2xx answer into out (when not nil).
// It returns the answer's status; any other than 2xx is an *APIError.
func Request(ctx context.Context, hc *http.Client, base, method, path, token string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return 0, err
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode/100 != 2 {
		e := &APIError{Status: resp.StatusCode}
		var eb struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(raw, &eb) == nil {
			e.Code, e.Message = eb.Error.Code, eb.Error.Message
		}
		if e.Code == "" && e.Message == "" {
			e.Message = strings.TrimSpace(string(raw))
		}
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
			e.RetryAfter = time.Duration(s) * time.Second
		}
		return resp.StatusCode, e
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, fmt.Errorf("decode %s %s: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

// Conversation is a customer's conversation and its token.
type Conversation struct {
	ID    string `json:"id"`
	Token string `json:"token"`
}

// CreateConversation starts a conversation as a new customer.
func (c *Client) CreateConversation(ctx context.Context) (Conversation, error) {
	var conv Conversation
	err := c.Do(ctx, "POST", "/api/v1/conversations", "", map[string]any{}, &conv)
	return conv, err
}

// CreateConversations creates n conversations with the given concurrency.
func (c *Client) CreateConversations(ctx context.Context, n, concurrency int) ([]Conversation, error) {
	out := make([]Conversation, n)
	err := parallel(ctx, n, concurrency, func(i int) error {
		var err error
		out[i], err = c.CreateConversation(ctx)
		return err
	})
	return out, err
}

// parallel runs fn(0..n-1) on workers goroutines and returns the first error.
func parallel(ctx context.Context, n, workers int, fn func(i int) error) error {
	var next atomic.Int64
	errc := make(chan error, workers)
	for range workers {
		go func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					errc <- ctx.Err()
					return
				}
				if err := fn(i); err != nil {
					next.Store(int64(n)) // stop the others
					errc <- err
					return
				}
			}
		}()
	}
	var first error
	for range workers {
		if err := <-errc; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Dialer opens WebSockets from several loopback source addresses in turn
// (127.0.0.2, 127.0.0.3, ...), so that tens of thousands of connections to
// one server port do not run out of ephemeral ports.
type Dialer struct {
	Sources int // how many source addresses; default 8
	n       atomic.Uint32
}

// Dial opens a WebSocket to url (ws://...).
func (d *Dialer) Dial(ctx context.Context, url string) (*websocket.Conn, error) {
	sources := d.Sources
	if sources <= 0 {
		sources = 8
	}
	i := d.n.Add(1) % uint32(sources)
	nd := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i))}, Timeout: 10 * time.Second}
	wd := websocket.Dialer{NetDialContext: nd.DialContext, HandshakeTimeout: 15 * time.Second,
		ReadBufferSize: 1024, WriteBufferSize: 1024}
	conn, resp, err := wd.DialContext(ctx, url, nil)
	if err != nil {
		if resp != nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			resp.Body.Close()
			return nil, fmt.Errorf("dial %s: %d %s", url, resp.StatusCode, bytes.TrimSpace(b))
		}
		return nil, err
	}
	return conn, nil
}

// wsURL turns http://host into ws://host.
func wsURL(base string) string { return "ws" + strings.TrimPrefix(base, "http") }
