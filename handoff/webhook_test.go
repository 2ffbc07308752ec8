package handoff_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tandem-chat/tandem/handoff"
	"github.com/tandem-chat/tandem/internal/errs"
)

// fastHooks deliver and retry quickly, for tests.
var fastHooks = handoff.WebhookOptions{Poll: 20 * time.Millisecond, BaseBackoff: 5 * time.Millisecond,
	MaxBackoff: 20 * time.Millisecond, MaxAttempts: 4, Refresh: 50 * time.Millisecond}

// hookRequest is one request a receiver got.
type hookRequest struct {
	event, delivery, timestamp, signature string
	body                                  []byte
	envelope                              struct {
		ID        string          `json:"id"`
		Type      string          `json:"type"`
		CreatedAt time.Time       `json:"created_at"`
		Data      json.RawMessage `json:"data"`
	}
}

// receiver is an httptest endpoint that records every request and answers
// with what status says (200 unless set).
type receiver struct {
	t      *testing.T
	srv    *httptest.Server
	mu     sync.Mutex
	got    []hookRequest
	status func(r hookRequest, n int) int // n: how many times this delivery came
	seen   map[string]int
	block  chan struct{} // when set, requests wait on it
	in     chan struct{} // a request arrived
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{t: t, seen: map[string]int{}, in: make(chan struct{}, 1024)}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		h := hookRequest{event: req.Header.Get(handoff.HeaderWebhookEvent), delivery: req.Header.Get(handoff.HeaderWebhookDelivery),
			timestamp: req.Header.Get(handoff.HeaderWebhookTimestamp), signature: req.Header.Get(handoff.HeaderWebhookSignature), body: body}
		if err := json.Unmarshal(body, &h.envelope); err != nil {
			t.Errorf("webhook body is not JSON: %s", body)
		}
		r.mu.Lock()
		r.got = append(r.got, h)
		r.seen[h.delivery]++
		n, status, block := r.seen[h.delivery], r.status, r.block
		r.mu.Unlock()
		r.in <- struct{}{}
		if block != nil {
			<-block
		}
		code := http.StatusOK
		if status != nil {
			code = status(h, n)
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) requests() []hookRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]hookRequest(nil), r.got...)
}

// waitFor waits until cond holds over the requests received.
func (r *receiver) waitFor(what string, cond func([]hookRequest) bool) []hookRequest {
	r.t.Helper()
	deadline := time.After(wait)
	for {
		if got := r.requests(); cond(got) {
			return got
		}
		select {
		case <-r.in:
		case <-deadline:
			r.t.Fatalf("timed out waiting for %s; got %d requests", what, len(r.requests()))
		}
	}
}

func strp(s string) *string { return &s }

// deliveryStates counts an endpoint's deliveries by state.
func deliveryStates(t *testing.T, svc *handoff.Service, id string) map[string]int {
	t.Helper()
	ds, err := svc.Deliveries(context.Background(), id, 200)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, d := range ds {
		out[d.State]++
	}
	return out
}

// waitDeliveries waits until an endpoint's deliveries are in the states
// cond wants.
func waitDeliveries(t *testing.T, svc *handoff.Service, id string, cond func(map[string]int) bool) map[string]int {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		st := deliveryStates(t, svc, id)
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("deliveries %v never reached the wanted states", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestWebhooks runs the outbox and its worker against real httptest
// receivers: every event type arrives signed (HMAC-SHA256 over timestamp
// "." body) with a delivery id; 500s are retried with backoff until they
// succeed, or given up after the cap; a dead endpoint never holds up
// messages; and two instances deliver each delivery once.
func TestWebhooks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	svc := e.serviceWith(handoff.Options{Routing: manual, Webhooks: fastHooks})
	ctx := context.Background()
	ada := e.user("Ada Admin", "admin")
	alex := e.user("Alex Agent")
	admin := handoff.AgentActor(ada, true)

	t.Run("Validation", func(t *testing.T) {
		for name, ch := range map[string]handoff.WebhookChange{
			"NoURL":       {Events: []string{handoff.HookMessage}},
			"BadScheme":   {URL: strp("ftp://example.com/x"), Events: []string{handoff.HookMessage}},
			"Credentials": {URL: strp("https://user:pw@example.com/x"), Events: []string{handoff.HookMessage}},
			"NoEvents":    {URL: strp("https://example.com/x")},
			"BadEvent":    {URL: strp("https://example.com/x"), Events: []string{"message.deleted"}},
			"ShortSecret": {URL: strp("https://example.com/x"), Events: []string{handoff.HookMessage}, Secret: strp("short")},
		} {
			if _, _, err := svc.CreateWebhook(ctx, admin, ch); !errs.Is(err, errs.Invalid) {
				t.Errorf("%s: %v, want Invalid", name, err)
			}
		}
	})

	t.Run("SignedEvents", func(t *testing.T) {
		rcv := newReceiver(t)
		const secret = "a-test-secret-of-some-length"
		w, got, err := svc.CreateWebhook(ctx, admin, handoff.WebhookChange{URL: strp(rcv.srv.URL + "/hooks"),
			Events: handoff.WebhookEvents, Secret: strp(secret)})
		if err != nil || got != secret || !w.Enabled {
			t.Fatalf("create: %+v %q %v", w, got, err)
		}
		defer svc.DeleteWebhook(ctx, admin, w.ID)
		c, _, _ := svc.CreateConversation(ctx, handoff.Customer{Name: "Kim"}, false)
		res, err := svc.PostMessage(ctx, c.ID, handoff.Author{Role: handoff.RoleCustomer}, "escalate team= priority=1", "m1")
		if err != nil {
			t.Fatal(err)
		}
		<-res.Turn
		must[*handoff.Conversation](t)(svc.Claim(ctx, handoff.AgentActor(alex, false), c.ID))
		must[*handoff.Conversation](t)(svc.CloseConversation(ctx, handoff.AgentActor(alex, false), c.ID, "resolved"))
		must[*handoff.CSAT](t)(svc.SubmitCSAT(ctx, c.ID, 5, "thanks"))

		types := func(rs []hookRequest) map[string]int {
			m := map[string]int{}
			for _, r := range rs {
				m[r.envelope.Type]++
			}
			return m
		}
		reqs := rcv.waitFor("every event type", func(rs []hookRequest) bool {
			m := types(rs)
			return m[handoff.HookEscalated] == 1 && m[handoff.HookAssigned] == 1 && m[handoff.HookClosed] == 1 &&
				m[handoff.HookCSAT] == 1 && m[handoff.HookMessage] >= 3
		})
		for _, r := range reqs {
			if !handoff.VerifyWebhook(secret, r.timestamp, r.body, r.signature) {
				t.Fatalf("signature %q does not verify over %s.%s", r.signature, r.timestamp, r.body)
			}
			if handoff.VerifyWebhook("another-secret-entirely", r.timestamp, r.body, r.signature) ||
				handoff.VerifyWebhook(secret, r.timestamp+"1", r.body, r.signature) {
				t.Fatal("a signature verifies with the wrong secret or timestamp")
			}
			if ts, err := strconv.ParseInt(r.timestamp, 10, 64); err != nil || time.Since(time.Unix(ts, 0)) > time.Minute {
				t.Fatalf("timestamp %q", r.timestamp)
			}
			if len(r.delivery) != 36 || r.event != r.envelope.Type || len(r.envelope.ID) != 36 {
				t.Fatalf("headers event %q delivery %q, envelope %+v", r.event, r.delivery, r.envelope)
			}
		}
		// message.created carries the message as the API returns it.
		msgs := must[[]handoff.Message](t)(svc.Messages(ctx, c.ID, 0, 100))
		for _, r := range reqs {
			if r.envelope.Type != handoff.HookMessage {
				continue
			}
			var d struct{ Message json.RawMessage }
			json.Unmarshal(r.envelope.Data, &d)
			var m handoff.Message
			json.Unmarshal(d.Message, &m)
			found := false
			for _, api := range msgs {
				if api.ID == m.ID {
					want, _ := json.Marshal(api)
					var a, b any
					json.Unmarshal(want, &a)
					json.Unmarshal(d.Message, &b)
					wa, _ := json.Marshal(a)
					wb, _ := json.Marshal(b)
					if string(wa) != string(wb) {
						t.Fatalf("message.created %s\nAPI message     %s", wb, wa)
					}
					found = true
				}
			}
			if !found {
				t.Fatalf("message.created for a message not in the transcript: %s", d.Message)
			}
		}
		waitDeliveries(t, svc, w.ID, func(st map[string]int) bool { return st["pending"] == 0 && st["delivered"] == len(reqs) })
	})

	t.Run("RetriesThenDelivers", func(t *testing.T) {
		rcv := newReceiver(t)
		rcv.status = func(r hookRequest, n int) int {
			if n <= 2 {
				return http.StatusInternalServerError
			}
			return http.StatusNoContent
		}
		w, _, err := svc.CreateWebhook(ctx, admin, handoff.WebhookChange{URL: strp(rcv.srv.URL), Events: []string{handoff.HookClosed}})
		if err != nil {
			t.Fatal(err)
		}
		defer svc.DeleteWebhook(ctx, admin, w.ID)
		c, _, _ := svc.CreateConversation(ctx, handoff.Customer{}, false)
		must[*handoff.Conversation](t)(svc.CloseConversation(ctx, admin, c.ID, "resolved"))
		reqs := rcv.waitFor("three attempts", func(rs []hookRequest) bool { return len(rs) >= 3 })
		if reqs[0].delivery != reqs[1].delivery || reqs[1].delivery != reqs[2].delivery {
			t.Fatalf("a retry changed the delivery id: %q %q %q", reqs[0].delivery, reqs[1].delivery, reqs[2].delivery)
		}
		waitDeliveries(t, svc, w.ID, func(st map[string]int) bool { return st["delivered"] == 1 })
		ds := must[[]handoff.Delivery](t)(svc.Deliveries(ctx, w.ID, 10))
		if len(ds) != 1 || ds[0].Attempts != 3 || ds[0].LastStatus == nil || *ds[0].LastStatus != http.StatusNoContent || ds[0].DeliveredAt == nil {
			t.Fatalf("deliveries %+v: want one, delivered on the third attempt", ds)
		}
	})

	t.Run("GivesUpAfterTheCap", func(t *testing.T) {
		rcv := newReceiver(t)
		rcv.status = func(hookRequest, int) int { return http.StatusInternalServerError }
		w, _, err := svc.CreateWebhook(ctx, admin, handoff.WebhookChange{URL: strp(rcv.srv.URL), Events: []string{handoff.HookClosed}})
		if err != nil {
			t.Fatal(err)
		}
		defer svc.DeleteWebhook(ctx, admin, w.ID)
		c, _, _ := svc.CreateConversation(ctx, handoff.Customer{}, false)
		must[*handoff.Conversation](t)(svc.CloseConversation(ctx, admin, c.ID, "resolved"))
		waitDeliveries(t, svc, w.ID, func(st map[string]int) bool { return st["failed"] == 1 })
		ds := must[[]handoff.Delivery](t)(svc.Deliveries(ctx, w.ID, 10))
		if ds[0].Attempts != fastHooks.MaxAttempts || *ds[0].LastStatus != 500 || ds[0].LastError == "" {
			t.Fatalf("delivery %+v: want %d attempts, the last answered 500", ds[0], fastHooks.MaxAttempts)
		}
		if n := len(rcv.requests()); n != fastHooks.MaxAttempts {
			t.Fatalf("%d requests, want %d", n, fastHooks.MaxAttempts)
		}
		if got := must[*handoff.Webhook](t)(svc.Webhook(ctx, w.ID)); got.Failed != 1 || got.Pending != 0 {
			t.Fatalf("webhook %+v: want 1 failed", got)
		}
	})

	t.Run("RefusedEndpointIsRetried", func(t *testing.T) {
		dead := httptest.NewServer(http.NotFoundHandler())
		deadURL := dead.URL
		dead.Close() // nothing listens there now
		w, _, err := svc.CreateWebhook(ctx, admin, handoff.WebhookChange{URL: strp(deadURL), Events: []string{handoff.HookClosed}})
		if err != nil {
			t.Fatal(err)
		}
		defer svc.DeleteWebhook(ctx, admin, w.ID)
		c, _, _ := svc.CreateConversation(ctx, handoff.Customer{}, false)
		must[*handoff.Conversation](t)(svc.CloseConversation(ctx, admin, c.ID, "resolved"))
		waitDeliveries(t, svc, w.ID, func(st map[string]int) bool { return st["failed"] == 1 })
		ds := must[[]handoff.Delivery](t)(svc.Deliveries(ctx, w.ID, 10))
		if ds[0].LastStatus != nil || ds[0].LastError == "" {
			t.Fatalf("delivery %+v: want a connection error", ds[0])
		}
	})

	t.Run("OnlySubscribedAndEnabled", func(t *testing.T) {
		rcv := newReceiver(t)
		w, _, err := svc.CreateWebhook(ctx, admin, handoff.WebhookChange{URL: strp(rcv.srv.URL), Events: []string{handoff.HookCSAT}})
		if err != nil {
			t.Fatal(err)
		}
		defer svc.DeleteWebhook(ctx, admin, w.ID)
		c, _, _ := svc.CreateConversation(ctx, handoff.Customer{}, false)
		must[*handoff.PostResult](t)(svc.PostMessage(ctx, c.ID, handoff.Author{Role: handoff.RoleCustomer}, "hello", ""))
		if st := deliveryStates(t, svc, w.ID); len(st) != 0 {
			t.Fatalf("deliveries %v for events the endpoint did not subscribe to", st)
		}
		off := false
		must[*handoff.Webhook](t)(svc.UpdateWebhook(ctx, admin, w.ID, handoff.WebhookChange{Enabled: &off, Events: []string{handoff.HookClosed}}))
		must[*handoff.Conversation](t)(svc.CloseConversation(ctx, admin, c.ID, "resolved"))
		if st := deliveryStates(t, svc, w.ID); len(st) != 0 {
			t.Fatalf("deliveries %v for a disabled endpoint", st)
		}
	})
}

// TestWebhookDeadEndpoint checks that an endpoint that never answers holds
// up no message: with the only delivery worker stuck in a request to it,
// customers' messages are still stored and acknowledged, their deliveries
// wait in the outbox, and go out once the endpoint answers.
func TestWebhookDeadEndpoint(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	opt := fastHooks
	opt.Workers = 1
	svc := e.serviceWith(handoff.Options{Routing: manual, Webhooks: opt})
	ctx := context.Background()
	admin := handoff.AgentActor(e.user("Ada Admin", "admin"), true)
	rcv := newReceiver(t)
	release := make(chan struct{})
	rcv.block = release
	w, _, err := svc.CreateWebhook(ctx, admin, handoff.WebhookChange{URL: strp(rcv.srv.URL), Events: []string{handoff.HookMessage}})
	if err != nil {
		t.Fatal(err)
	}
	c, _, _ := svc.CreateConversation(ctx, handoff.Customer{}, false)
	first, err := svc.PostMessage(ctx, c.ID, handoff.Author{Role: handoff.RoleCustomer}, "first", "m0")
	if err != nil {
		t.Fatal(err)
	}
	<-first.Turn
	rcv.waitFor("the first request to hang", func(rs []hookRequest) bool { return len(rs) == 1 })

	// The worker is stuck; messages go on.
	const n = 20
	for i := 1; i <= n; i++ {
		res, err := svc.PostMessage(ctx, c.ID, handoff.Author{Role: handoff.RoleCustomer}, "message "+strconv.Itoa(i), "m"+strconv.Itoa(i))
		if err != nil || !res.Created {
			t.Fatalf("message %d while the endpoint hangs: %v", i, err)
		}
		<-res.Turn
	}
	if got := len(rcv.requests()); got != 1 {
		t.Fatalf("%d requests reached the hanging endpoint, want 1", got)
	}
	stored := must[[]handoff.Message](t)(svc.Messages(ctx, c.ID, 0, 1000))
	if len(stored) != 2*(n+1) { // each message and the bot's answer
		t.Fatalf("%d messages stored, want %d", len(stored), 2*(n+1))
	}
	if st := deliveryStates(t, svc, w.ID); st["pending"] != len(stored) {
		t.Fatalf("outbox %v, want %d pending", st, len(stored))
	}
	close(release)
	waitDeliveries(t, svc, w.ID, func(st map[string]int) bool { return st["delivered"] == len(stored) })
}

// TestWebhookInstances runs two instances' workers on one database: SKIP
// LOCKED gives each delivery to one of them, so the receiver gets every
// delivery exactly once.
func TestWebhookInstances(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.serviceWith(handoff.Options{Routing: manual, Webhooks: fastHooks})
	b := e.serviceWith(handoff.Options{Routing: manual, Webhooks: fastHooks})
	ctx := context.Background()
	admin := handoff.AgentActor(e.user("Ada Admin", "admin"), true)
	rcv := newReceiver(t)
	w, _, err := a.CreateWebhook(ctx, admin, handoff.WebhookChange{URL: strp(rcv.srv.URL), Events: []string{handoff.HookMessage}})
	if err != nil {
		t.Fatal(err)
	}
	// b learns of the endpoint by its own refresh.
	deadline := time.Now().Add(wait)
	probe, _, _ := b.CreateConversation(ctx, handoff.Customer{}, false)
	for {
		res := must[*handoff.PostResult](t)(b.PostMessage(ctx, probe.ID, handoff.Author{Role: handoff.RoleCustomer}, "probe", ""))
		<-res.Turn
		if st := deliveryStates(t, a, w.ID); st["pending"]+st["delivered"] > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the second instance never saw the endpoint")
		}
		time.Sleep(20 * time.Millisecond)
	}
	var wg sync.WaitGroup
	for i, svc := range []*handoff.Service{a, b, a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, _, _ := svc.CreateConversation(ctx, handoff.Customer{}, false)
			for j := 0; j < 10; j++ {
				res, err := svc.PostMessage(ctx, c.ID, handoff.Author{Role: handoff.RoleCustomer}, "hi "+strconv.Itoa(i*100+j), "")
				if err != nil {
					t.Error(err)
					return
				}
				<-res.Turn
			}
		}()
	}
	wg.Wait()
	st := waitDeliveries(t, a, w.ID, func(st map[string]int) bool { return st["pending"] == 0 })
	reqs := rcv.requests()
	seen := map[string]int{}
	for _, r := range reqs {
		seen[r.delivery]++
		if seen[r.delivery] > 1 {
			t.Fatalf("delivery %s sent twice", r.delivery)
		}
	}
	if len(seen) != st["delivered"] || st["delivered"] < 80 {
		t.Fatalf("%d distinct deliveries received, %v recorded", len(seen), st)
	}
}
