package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"testing"

	"github.com/chromedp/chromedp"

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
