package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tandem-chat/tandem/handoff"
	"github.com/tandem-chat/tandem/internal/db/dbtest"
	"github.com/tandem-chat/tandem/web"
)

// chatWith is the chat page's path for a customer the widget names, the
// way widget.js passes them: JSON in the fragment.
func chatWith(who map[string]string) string {
	b, _ := json.Marshal(who)
	return "/chat#" + url.PathEscape(string(b))
}

// TestBrowserEarlierConversations drives the chat page as a customer whom
// the site vouches for (external_id with its user_hash): the header offers
// their earlier conversations, lists the verified ones only, and shows one
// read-only. A customer without a hash, or with a wrong one, is offered
// nothing and still chats; another account on the same browser never
// reopens the first one's conversation.
func TestBrowserEarlierConversations(t *testing.T) {
	t.Parallel()
	bctx := newBrowser(t)
	s := startPlaceholderServer(t, dbtest.New(t))
	earlier := s.createVerified(t, "cust-42")
	s.post(t, earlier, "My parcel never came", "e1")
	var forged conversation
	s.do(t, "POST", "/api/v1/conversations", "", map[string]any{"customer": map[string]string{"external_id": "cust-42"}}).
		expect(t, http.StatusCreated).decode(t, &forged)
	s.post(t, forged, "Injected into the history", "f1")
	kim := map[string]string{"external_id": "cust-42", "name": "Kim", "user_hash": web.UserHash(testSecret, "cust-42")}

	t.Run("Verified", func(t *testing.T) {
		tb := newTab(t, bctx, s.URL(), desktop, true)
		tb.open(chatWith(kim))
		tb.waitFor(`!document.getElementById('chat-history').hidden`, "the earlier-conversations button")
		tb.do(chromedp.Click(chromedp.ID("chat-history")))
		tb.waitFor(fmt.Sprintf(`!!document.querySelector('.history-item[data-id=%q]')`, earlier.ID), "the earlier conversation in the list")
		var ids []string
		tb.eval(`[...document.querySelectorAll('.history-item')].map(b => b.dataset.id)`, &ids)
		if len(ids) != 1 {
			t.Fatalf("history lists %v, want only %s (not the forged %s)", ids, earlier.ID, forged.ID)
		}
		tb.screenshot("chat-history-desktop")
		tb.do(chromedp.Click(chromedp.CSS(fmt.Sprintf(`.history-item[data-id=%q]`, earlier.ID))))
		tb.waitFor(`[...document.querySelectorAll('.history-transcript .bubble')].some(b => b.textContent === 'My parcel never came')`,
			"the earlier conversation's messages")
		tb.screenshot("chat-history-transcript-desktop")
		tb.do(chromedp.Click(chromedp.ID("history-back")))
		tb.waitFor(`document.getElementById('history').hidden && !document.getElementById('messages').closest('.show-history')`, "back to the chat")
		// The chat goes on as a verified conversation.
		conv := tb.conversationOf()
		var c struct{ Verified bool }
		s.do(t, "GET", "/api/v1/conversations/"+conv.ID, conv.Token, nil).expect(t, http.StatusOK).decode(t, &c)
		if !c.Verified || conv.ID == earlier.ID {
			t.Fatalf("the page's conversation %s verified %v", conv.ID, c.Verified)
		}

		// Another account signs in on the same browser: Kim's conversation
		// is not reopened for them.
		tb.open(chatWith(map[string]string{"external_id": "cust-7", "user_hash": web.UserHash(testSecret, "cust-7")}))
		var stored string
		tb.eval(`localStorage.getItem('tandem.chat.v1') || ''`, &stored)
		var shown int
		tb.eval(`document.querySelectorAll('#messages > li[data-seq]').length`, &shown)
		if shown != 0 {
			t.Fatalf("another account sees %d items of Kim's conversation (stored %s)", shown, stored)
		}
	})

	t.Run("NotVerified", func(t *testing.T) {
		tb := newTab(t, bctx, s.URL(), phone, true)
		tb.open(chatWith(map[string]string{"external_id": "cust-42", "name": "Kim"}))
		var hidden bool
		tb.eval(`document.getElementById('chat-history').hidden`, &hidden)
		if !hidden {
			t.Fatal("a customer without a user_hash is offered earlier conversations")
		}
	})

	t.Run("WrongHash", func(t *testing.T) {
		tb := newTab(t, bctx, s.URL(), desktop, true)
		tb.open(chatWith(map[string]string{"external_id": "cust-42", "user_hash": web.UserHash("not-the-site-secret", "cust-42")}))
		tb.do(chromedp.SendKeys(chromedp.ID("input"), "Hello?"), chromedp.Click(chromedp.ID("send")))
		tb.waitFor(`[...document.querySelectorAll('#messages > li.msg-customer[data-seq]')].length === 1`, "the message stored")
		tb.waitFor(`document.getElementById('chat-history').hidden`, "the history button gone")
		conv := tb.conversationOf()
		var c struct{ Verified bool }
		s.do(t, "GET", "/api/v1/conversations/"+conv.ID, conv.Token, nil).expect(t, http.StatusOK).decode(t, &c)
		if c.Verified {
			t.Fatal("a wrong hash made a verified conversation")
		}
		s.do(t, "GET", "/api/v1/customers/me/conversations", conv.Token, nil).expect(t, http.StatusForbidden)
	})
}

// TestBrowserAdminWebhooksRetention drives the admin page's webhooks and
// retention section (signed in by cookie, so every change also passes the
// CSRF check): retention saved, a webhook added with its secret shown once,
// an event signed with that secret reaching a real receiver, and the
// webhook paused.
func TestBrowserAdminWebhooksRetention(t *testing.T) {
	t.Parallel()
	bctx := newBrowser(t)
	s := startPlaceholderServer(t, dbtest.New(t))
	staff(t, s)
	type hit struct {
		ts, sig string
		body    []byte
	}
	got := make(chan hit, 10)
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- hit{r.Header.Get("Tandem-Timestamp"), r.Header.Get("Tandem-Signature"), b}
	}))
	t.Cleanup(rcv.Close)

	tb := newTab(t, bctx, s.URL(), desktop, true)
	tb.open("/admin#integrations")
	tb.signIn("admin@example.com")
	tb.waitFor(`!!document.querySelector('#retention-form') && !!document.querySelector('#webhook-create')`, "the webhooks and retention section")
	tb.eval(`document.getElementById('ret-days').value = '30', document.getElementById('ret-mode').value = 'anonymise', true`, nil)
	tb.do(chromedp.Click(chromedp.CSS(`#retention-form button[type=submit]`)))
	tb.waitFor(`[...document.querySelectorAll('.toast')].some(t => t.textContent === 'Retention saved.')`, "the retention saved")
	var raw []byte
	if err := s.Pool.QueryRow(context.Background(), `SELECT value FROM settings WHERE key = 'retention'`).Scan(&raw); err != nil ||
		!strings.Contains(string(raw), `"days": 30`) || !strings.Contains(string(raw), "anonymise") {
		t.Fatalf("stored retention %s, %v", raw, err)
	}

	tb.do(chromedp.SendKeys(chromedp.ID("wh-url"), rcv.URL+"/tandem"), chromedp.SendKeys(chromedp.ID("wh-desc"), "CRM"),
		chromedp.Click(chromedp.CSS(`#webhook-create button[type=submit]`)))
	tb.waitFor(`!!document.getElementById('wh-secret-value')`, "the new webhook's secret")
	var secret string
	tb.eval(`document.getElementById('wh-secret-value').textContent`, &secret)
	tb.screenshot("admin-webhooks-desktop")

	c := s.createConversation(t)
	_, agent := s.staff(t, "Nora Agent", "agent")
	s.do(t, "POST", "/api/v1/conversations/"+c.ID+"/close", agent, nil).expect(t, http.StatusOK)
	select {
	case g := <-got:
		if !handoff.VerifyWebhook(secret, g.ts, g.body, g.sig) || !strings.Contains(string(g.body), `"conversation.closed"`) {
			t.Fatalf("request %s signed %q: want conversation.closed signed with the shown secret", g.body, g.sig)
		}
	case <-time.After(wait):
		t.Fatal("the receiver got nothing")
	}

	tb.do(chromedp.Click(chromedp.CSS(`#webhooks-table tbody tr button.btn.small:not(.danger)`)))
	tb.waitFor(`[...document.querySelectorAll('#webhooks-table button')].some(b => b.textContent === 'Resume')`, "the webhook paused")
	var enabled bool
	if err := s.Pool.QueryRow(context.Background(), `SELECT enabled FROM webhooks`).Scan(&enabled); err != nil || enabled {
		t.Fatalf("enabled %v, %v: want paused", enabled, err)
	}
}
