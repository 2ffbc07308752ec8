package loadgen

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// pipeHolder runs HoldSockets in a goroutine behind a holder, as the child
// process would run it behind its pipes.
func pipeHolder(t *testing.T) (*holder, chan error) {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := HoldSockets(context.Background(), inR, outW)
		inR.Close()
		outW.Close()
		done <- err
	}()
	return &holder{name: "test holder", in: inW, out: bufio.NewScanner(outR), logs: &tailBuffer{max: 1024}}, done
}

func TestHoldSockets(t *testing.T) {
	var open atomic.Int64
	kick := make(chan struct{})
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		open.Add(1)
		defer open.Add(-1)
		defer c.Close()
		if r.URL.Query().Get("kick") != "" {
			<-kick // the server closes this one when told
			return
		}
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	url := wsURL(srv.URL)

	t.Run("OK", func(t *testing.T) {
		h, done := pipeHolder(t)
		if err := h.open([]string{url, url + "?kick=1", url}, 2); err != nil {
			t.Fatal(err)
		}
		if err := h.open(nil, 2); err != nil {
			t.Fatal(err)
		}
		if k, err := h.closedCount(); err != nil || k != 0 {
			t.Fatalf("closed = %d, %v; want 0", k, err)
		}
		close(kick)
		for {
			k, err := h.closedCount()
			if err != nil {
				t.Fatal(err)
			}
			if k == 1 {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		h.stop()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		for open.Load() != 0 { // the end of input closed the other two
			time.Sleep(10 * time.Millisecond)
		}
	})
	t.Run("ErrDial", func(t *testing.T) {
		h, done := pipeHolder(t)
		err := h.open([]string{url, strings.Replace(url, "ws://", "ws://127.0.0.1:1/", 1)}, 1)
		if err == nil || !strings.Contains(err.Error(), "opening socket 2: ") {
			t.Fatalf("err = %v; want the dial's error", err)
		}
		h.stop()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
	t.Run("ErrCommand", func(t *testing.T) {
		h, done := pipeHolder(t)
		io.WriteString(h.in, "shout\n")
		if err := <-done; err == nil || !strings.Contains(err.Error(), "unknown command") {
			t.Fatalf("err = %v; want unknown command", err)
		}
	})
}

// TestHoldSocketsCentrifugo: a socket to a Centrifugo URL sends connect
// and subscribe in one frame, waits for both replies, fails on an error
// reply, and answers the server's pings ({}) in kind.
func TestHoldSocketsCentrifugo(t *testing.T) {
	pong := make(chan string, 1)
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		_, msg, err := c.ReadMessage()
		if err != nil {
			return
		}
		want := `{"id":1,"connect":{}}` + "\n" + `{"id":2,"subscribe":{"channel":"conv-7"}}`
		if string(msg) != want {
			c.WriteMessage(websocket.TextMessage, []byte(`{"id":1,"error":{"code":100,"message":"unexpected"}}`))
			return
		}
		// The replies in two frames, as a server may send them.
		c.WriteMessage(websocket.TextMessage, []byte(`{"id":1,"connect":{"client":"x","version":"5.4.9"}}`))
		if r.URL.Query().Get("deny") != "" {
			c.WriteMessage(websocket.TextMessage, []byte(`{"id":2,"error":{"code":103,"message":"permission denied"}}`))
		} else {
			c.WriteMessage(websocket.TextMessage, []byte(`{"id":2,"subscribe":{}}`))
		}
		c.WriteMessage(websocket.TextMessage, []byte(`{}`))
		if _, msg, err := c.ReadMessage(); err == nil {
			pong <- string(msg)
		}
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	url := wsURL(srv.URL)

	h, done := pipeHolder(t)
	if err := h.open([]string{url + "/connection/websocket#centrifugo:conv-7"}, 1); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-pong:
		if got != "{}" {
			t.Fatalf("answered the ping with %q", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the ping was not answered")
	}
	err := h.open([]string{url + "/connection/websocket?deny=1#centrifugo:conv-7"}, 1)
	if err == nil || !strings.Contains(err.Error(), "command 2") || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("err = %v; want the subscribe's error", err)
	}
	h.stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestSocketBudget(t *testing.T) {
	if err := socketBudget(10000, 1, true); err != nil {
		t.Fatalf("10,000 sockets in one process: %v", err)
	}
	if err := socketBudget(1000, 4, true); err == nil || !strings.Contains(err.Error(), "at most 3") {
		t.Fatalf("4 instances: err = %v", err)
	}
	if err := socketBudget(1<<40, 3, false); err == nil {
		t.Fatal("2^40 sockets fit?")
	}
}
