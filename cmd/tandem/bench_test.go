package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/tandem-chat/tandem/internal/config"
	"github.com/tandem-chat/tandem/internal/db/dbtest"
)

// benchMain starts a server on a fresh database for a benchmark.
func benchMain(b *testing.B) *Main {
	b.Helper()
	env := map[string]string{
		"DATABASE_URL": dbtest.New(b), "TANDEM_ADDR": "127.0.0.1:0",
		"TANDEM_SECRET": strings.Repeat("b", 32), "TANDEM_DATA_DIR": b.TempDir(),
		"TANDEM_DB_MAX_CONNS": "40", "TANDEM_LOG_LEVEL": "error",
		// Clients here send far faster than people do.
		"TANDEM_RATE_MESSAGES": "0", "TANDEM_RATE_NEW_CONVERSATIONS": "0",
	}
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		b.Fatal(err)
	}
	if err := cfg.ResolveLocal(); err != nil {
		b.Fatal(err)
	}
	m, err := NewMain(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	if err := m.Run(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	return m
}

var benchClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256}}

func benchCreate(b *testing.B, base string) (id, token string) {
	resp, err := benchClient.Post(base+"/api/v1/conversations", "application/json", strings.NewReader(`{}`))
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var c struct{ ID, Token string }
	if err := json.NewDecoder(resp.Body).Decode(&c); err != nil || resp.StatusCode != 201 {
		b.Fatalf("create: %d %v", resp.StatusCode, err)
	}
	return c.ID, c.Token
}

func benchPost(base, id, token, text, clientID string) (int, error) {
	body, _ := json.Marshal(map[string]string{"text": text, "client_msg_id": clientID})
	req, _ := http.NewRequest("POST", base+"/api/v1/conversations/"+id+"/messages", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := benchClient.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// BenchmarkMessagesREST measures customer messages accepted over REST:
// each is committed (with its seq) before the 201, and each starts a bot
// turn that commits a reply too.
func BenchmarkMessagesREST(b *testing.B) {
	m := benchMain(b)
	base := m.URL()
	var n atomic.Int64
	b.SetParallelism(16) // 32 concurrent clients on 2 cores
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		id, token := benchCreate(b, base)
		for i := 0; pb.Next(); i++ {
			st, err := benchPost(base, id, token, "Where is my order?", fmt.Sprintf("c%d", i))
			if err != nil || st != 201 {
				b.Errorf("post: %d %v", st, err)
				return
			}
			n.Add(1)
		}
	})
	b.ReportMetric(float64(n.Load())/time.Since(start).Seconds(), "msgs/s")
}

// BenchmarkDeliveryWebSocket measures messages posted over REST and
// delivered to a subscriber's WebSocket: throughput and the latency from
// the 201 (commit) to the frame arriving.
func BenchmarkDeliveryWebSocket(b *testing.B) {
	m := benchMain(b)
	base := m.URL()
	const convs = 32
	type conv struct {
		id, token string
		ws        *websocket.Conn
	}
	cs := make([]conv, convs)
	var mu sync.Mutex
	sent := map[string]time.Time{}
	var lat []time.Duration
	var got atomic.Int64
	var wg sync.WaitGroup
	for i := range cs {
		cs[i].id, cs[i].token = benchCreate(b, base)
		url := strings.Replace(base, "http://", "ws://", 1) + "/ws/conversations/" + cs[i].id + "?token=" + cs[i].token
		ws, _, err := websocket.DefaultDialer.Dial(url, nil)
		if err != nil {
			b.Fatal(err)
		}
		cs[i].ws = ws
		wg.Add(1)
		go func(ws *websocket.Conn) {
			defer wg.Done()
			for {
				_, data, err := ws.ReadMessage()
				if err != nil {
					return
				}
				var f struct {
					Type    string
					Message struct {
						Role        string
						ClientMsgID string `json:"client_msg_id"`
					}
				}
				if json.Unmarshal(data, &f) != nil || f.Type != "message" || f.Message.Role != "customer" {
					continue
				}
				now := time.Now()
				mu.Lock()
				if t, ok := sent[f.Message.ClientMsgID]; ok {
					lat = append(lat, now.Sub(t))
				}
				mu.Unlock()
				got.Add(1)
			}
		}(ws)
	}
	b.ResetTimer()
	start := time.Now()
	var next atomic.Int64
	var pw sync.WaitGroup
	for w := 0; w < convs; w++ {
		pw.Add(1)
		go func(w int) {
			defer pw.Done()
			c := cs[w]
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				cid := fmt.Sprintf("m%d", i)
				mu.Lock()
				sent[cid] = time.Now()
				mu.Unlock()
				if st, err := benchPost(base, c.id, c.token, "Where is my order?", cid); err != nil || st != 201 {
					b.Errorf("post: %d %v", st, err)
					return
				}
			}
		}(w)
	}
	pw.Wait()
	deadline := time.Now().Add(30 * time.Second)
	for got.Load() < int64(b.N) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	if got.Load() < int64(b.N) {
		b.Fatalf("delivered %d of %d", got.Load(), b.N)
	}
	for _, c := range cs {
		c.ws.Close()
	}
	wg.Wait()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	}
}
