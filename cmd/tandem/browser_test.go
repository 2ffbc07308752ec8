package main

// Browser tests: headless Chromium (Debian's chromium package, which
// scripts/browser.sh installs for `make test`) drives the real pages against
// the real server. Screenshots of every page at desktop and phone widths go
// to artifacts/screenshots (or $TANDEM_ARTIFACTS), which git ignores.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/tandem-chat/tandem/internal/auth"
	"github.com/tandem-chat/tandem/internal/config"
	"github.com/tandem-chat/tandem/internal/db/dbtest"
	"github.com/tandem-chat/tandem/knowledge"
)

// browserWait bounds every wait for the page in these tests.
const browserWait = 15 * time.Second

// chromiumPath finds the browser, or returns "".
func chromiumPath() string {
	if p := os.Getenv("TANDEM_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// newBrowser starts headless Chromium with a fresh profile and quits it when
// the test ends. Without a browser the test is skipped: make test installs
// one with scripts/browser.sh.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	path := chromiumPath()
	if path == "" {
		t.Skip("no Chromium: run scripts/browser.sh (make test does) to install Debian's chromium package")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
		// The network is closed: no QUIC, updates, sync or field trials.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("no-pings", true),
		chromedp.Flag("lang", "en-US"),
		chromedp.Env("LANGUAGE=en_US", "LANG=en_US.UTF-8"),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start %s: %v", path, err)
	}
	return bctx
}

// tab is one browser tab of a test, with its own viewport.
type tab struct {
	t    *testing.T
	ctx  context.Context
	base string
}

// viewport sizes: desktop, and a phone (390x844 CSS pixels at 2x).
type viewport struct {
	name string
	w, h int64
}

var (
	desktop = viewport{"desktop", 1280, 800}
	phone   = viewport{"phone", 390, 844}
)

// newTab opens a tab at the given size; it closes when the test ends. A
// private tab has its own cookies and storage, like another person's
// browser.
func newTab(t *testing.T, bctx context.Context, base string, vp viewport, private ...bool) *tab {
	t.Helper()
	var opts []chromedp.ContextOption
	if len(private) > 0 && private[0] {
		opts = append(opts, chromedp.WithNewBrowserContext())
	}
	ctx, cancel := chromedp.NewContext(bctx, opts...)
	t.Cleanup(cancel)
	tb := &tab{t: t, ctx: ctx, base: base}
	// The first run opens the tab, which lives as long as the context of
	// that run: it must not have a timeout.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	// Accept confirm() dialogs, as the person at the keyboard would.
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for _, err := range dialogs {
			if err != nil {
				return
			}
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
	var emulate chromedp.Action[chromedp.Void]
	if vp == phone {
		emulate = chromedp.EmulateViewport(vp.w, vp.h, chromedp.EmulateScale(2), chromedp.EmulateMobile, chromedp.EmulatePortrait)
	} else {
		emulate = chromedp.EmulateViewport(vp.w, vp.h)
	}
	tb.do(emulate)
	return tb
}

// sibling opens another tab that shares this tab's cookies and storage.
func (tb *tab) sibling(vp viewport) *tab {
	tb.t.Helper()
	return newTab(tb.t, tb.ctx, tb.base, vp)
}

// do runs actions with a bound, failing the test on error.
func (tb *tab) do(actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, browserWait)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.t.Fatalf("browser: %v", err)
	}
}

// open navigates to a page and waits until its script is ready.
func (tb *tab) open(path string) {
	tb.t.Helper()
	tb.do(chromedp.Navigate(tb.base + path))
	tb.waitFor(`document.body.dataset.ready === "true"`, "the page's script to start")
}

// eval evaluates JavaScript and decodes its JSON result into v.
func (tb *tab) eval(js string, v any) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, browserWait)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](js))
	if err != nil {
		tb.t.Fatalf("evaluate %s: %v", js, err)
	}
	if v != nil {
		if err := json.Unmarshal(raw, v); err != nil {
			tb.t.Fatalf("evaluate %s: decode %s: %v", js, raw, err)
		}
	}
}

// openConversation waits for a conversation's entry on the console, in
// "mine" or in the queue, and clicks it in one step of the page's own: the
// console redraws its lists as events come, so a node found first and
// clicked after may be gone ("Could not find node with given id", seen on a
// queue entry). It reports whether the entry was in the queue.
func (tb *tab) openConversation(convID string) (queued bool) {
	tb.t.Helper()
	sel := fmt.Sprintf(`li[data-id="%s"] button`, convID)
	tb.waitFor(fmt.Sprintf(`!!document.querySelector('#mine %[1]s, #queue %[1]s')`, sel), "the conversation on the console")
	tb.eval(fmt.Sprintf(`(() => {
		const b = document.querySelector('#mine %[1]s') || document.querySelector('#queue %[1]s');
		b.click();
		return !!b.closest('#queue');
	})()`, sel), &queued)
	return queued
}

// waitFor polls a JavaScript predicate until it is true.
func (tb *tab) waitFor(js, what string) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, browserWait+time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](js,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(browserWait))); err != nil {
		tb.t.Fatalf("waiting for %s (%s): %v", what, js, err)
	}
}

// screenshot saves the visible page as artifacts/screenshots/NAME.png.
func (tb *tab) screenshot(name string) {
	tb.t.Helper()
	// Let transitions and fonts settle.
	tb.do(chromedp.Sleep(250 * time.Millisecond))
	ctx, cancel := context.WithTimeout(tb.ctx, browserWait)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		tb.t.Fatalf("screenshot %s: %v", name, err)
	}
	dir := os.Getenv("TANDEM_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("..", "..", "artifacts")
	}
	dir = filepath.Join(dir, "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		tb.t.Fatal(err)
	}
}

// dropProxy forwards TCP connections to the server and can drop them all
// and refuse new ones for a while: a network outage, as the browser sees it.
type dropProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	paused bool
}

func newDropProxy(t *testing.T, target string) *dropProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &dropProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.drop()
	})
	return p
}

func (p *dropProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		paused := p.paused
		p.mu.Unlock()
		if paused {
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			_, _ = io.Copy(dst, src)
			dst.Close()
			src.Close()
			p.mu.Lock()
			delete(p.conns, dst)
			delete(p.conns, src)
			p.mu.Unlock()
		}
		go pipe(c, up)
		go pipe(up, c)
	}
}

func (p *dropProxy) URL() string { return "http://" + p.ln.Addr().String() }

// drop closes every open connection.
func (p *dropProxy) drop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
}

// pause refuses new connections until resume.
func (p *dropProxy) pause(on bool) {
	p.mu.Lock()
	p.paused = on
	p.mu.Unlock()
}

// shownItem is one sequenced item of the chat transcript as the page shows it.
type shownItem struct {
	Seq     int64    `json:"seq"`
	Kind    string   `json:"kind"` // customer, bot, agent, system, state
	Text    string   `json:"text"`
	Sources []string `json:"sources"`
}

const shownJS = `[...document.querySelectorAll('#messages > li[data-seq]')].map(li => ({
	seq: Number(li.dataset.seq),
	kind: li.classList.contains('msg-customer') ? 'customer' : li.classList.contains('msg-bot') ? 'bot'
		: li.classList.contains('msg-agent') ? 'agent' : li.classList.contains('system') ? 'system' : 'state',
	text: (li.querySelector('.bubble') || li).textContent,
	sources: [...li.querySelectorAll('.sources li')].map(s => s.textContent),
}))`

// shown returns what the chat page shows, checking that no seq is shown twice.
func (tb *tab) shown() []shownItem {
	tb.t.Helper()
	var items []shownItem
	tb.eval(shownJS, &items)
	seen := map[int64]bool{}
	for _, it := range items {
		if seen[it.Seq] {
			tb.t.Fatalf("seq %d is shown twice: %+v", it.Seq, items)
		}
		seen[it.Seq] = true
	}
	return items
}

// matchTranscript fails unless the page shows exactly the server's messages,
// each once, with their text and sources.
func matchTranscript(t *testing.T, shown []shownItem, msgs []apiMessage) {
	t.Helper()
	bySeq := map[int64]shownItem{}
	for _, it := range shown {
		bySeq[it.Seq] = it
	}
	n := 0
	for _, it := range shown {
		if it.Kind != "state" {
			n++
		}
	}
	if n != len(msgs) {
		t.Fatalf("page shows %d messages, server has %d:\npage: %+v\nserver: %+v", n, len(msgs), shown, msgs)
	}
	for _, m := range msgs {
		it, ok := bySeq[m.Seq]
		if !ok {
			t.Fatalf("message seq %d (%s %q) is not shown", m.Seq, m.Role, m.Text)
		}
		if it.Kind != m.Role {
			t.Errorf("seq %d shown as %s, server role %s", m.Seq, it.Kind, m.Role)
		}
		if strings.TrimSpace(it.Text) != strings.TrimSpace(m.Text) {
			t.Errorf("seq %d shows %q, server text %q", m.Seq, it.Text, m.Text)
		}
		if srcs, _ := m.Meta["sources"].([]any); len(srcs) > 0 {
			if len(it.Sources) == 0 {
				t.Errorf("seq %d has %d sources on the server and none on the page", m.Seq, len(srcs))
			}
			for _, s := range srcs {
				title, _ := s.(map[string]any)["title"].(string)
				if title != "" && !slices.Contains(it.Sources, title) {
					t.Errorf("seq %d: source %q not shown (page: %v)", m.Seq, title, it.Sources)
				}
			}
		}
	}
}

// quiet waits (bounded) until the conversation's last message is not the
// customer's and no new message came for a moment, and returns them all. The
// bot answers with one message; a handoff adds system messages.
func quiet(t *testing.T, s *server, c conversation) []apiMessage {
	t.Helper()
	deadline := time.Now().Add(wait)
	var last []apiMessage
	for {
		msgs := s.messages(t, c, 0)
		if len(msgs) > 0 && msgs[len(msgs)-1].Role != "customer" && len(msgs) == len(last) {
			return msgs
		}
		if time.Now().After(deadline) {
			t.Fatalf("the conversation did not settle in %v: %+v", wait, msgs)
		}
		last = msgs
		time.Sleep(250 * time.Millisecond)
	}
}

// loadExamples loads the English demo knowledge base into the server.
func loadExamples(t *testing.T, s *server) {
	t.Helper()
	for _, name := range []string{"returns-and-refunds.md", "shipping-and-delivery.md", "faq.csv"} {
		data, err := os.ReadFile(filepath.Join("..", "..", "examples", "en", name))
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Knowledge.Create(context.Background(), knowledge.Upload{Filename: name, Data: data}); err != nil {
			t.Fatalf("load %s: %v", name, err)
		}
	}
}

const staffPassword = "browser-test-password"

// staff creates the demo staff accounts with a cheap password hash.
func staff(t *testing.T, s *server) {
	t.Helper()
	store := auth.NewStore(s.Pool)
	for _, u := range []struct{ email, name, role string }{
		{"admin@example.com", "Ada Admin", auth.RoleAdmin},
		{"agent@example.com", "Alex Agent", auth.RoleAgent},
		{"editor@example.com", "Eddie Editor", auth.RoleEditor},
	} {
		if _, err := store.CreateUser(context.Background(), auth.NewUser{Email: u.email, Password: staffPassword,
			DisplayName: u.name, Roles: []string{u.role}}); err != nil {
			t.Fatal(err)
		}
		cheapenPassword(t, s.Pool, u.email, staffPassword)
	}
}

// signIn fills a page's sign-in form and waits for the signed-in view.
func (tb *tab) signIn(email string) {
	tb.t.Helper()
	tb.waitFor(`!!document.querySelector('#signin-email')`, "the sign-in form")
	tb.do(
		chromedp.SendKeys(chromedp.ID("signin-email"), email),
		chromedp.SendKeys(chromedp.ID("signin-password"), staffPassword),
		chromedp.Click(chromedp.CSS("#signin button[type=submit]")),
	)
	tb.waitFor(`document.body.dataset.signedIn === "true"`, "the signed-in view")
}

// conversationOf reads the conversation the chat page keeps in localStorage.
func (tb *tab) conversationOf() conversation {
	tb.t.Helper()
	var c conversation
	tb.eval(`JSON.parse(localStorage.getItem('tandem.chat.v1') || '{}')`, &c)
	if c.ID == "" || c.Token == "" {
		tb.t.Fatal("the chat page keeps no conversation in localStorage")
	}
	return c
}

func TestBrowser(t *testing.T) {
	t.Parallel()
	bctx := newBrowser(t)
	s := startServer(t, dbtest.New(t))
	loadExamples(t, s)
	staff(t, s)
	proxy := newDropProxy(t, s.Addr())

	t.Run("ChatAnswersAndSurvivesReconnect", func(t *testing.T) {
		tb := newTab(t, bctx, proxy.URL(), desktop)
		tb.open("/chat")
		tb.do(
			chromedp.SendKeys(chromedp.ID("input"), "How do I return an item?"),
			chromedp.Click(chromedp.ID("send")),
		)
		tb.waitFor(`[...document.querySelectorAll('#messages > li[data-seq]')].some(li => !li.classList.contains('msg-customer') && !li.classList.contains('state'))`,
			"the reply to the first question")
		conv := tb.conversationOf()
		msgs := s.settle(t, conv)
		tb.waitFor(fmt.Sprintf(`document.querySelectorAll('#messages > li[data-seq]:not(.state)').length >= %d`, len(msgs)), "every message")
		matchTranscript(t, tb.shown(), msgs)
		t.Logf("reply: %s %q (meta %v)", msgs[len(msgs)-1].Role, msgs[len(msgs)-1].Text, msgs[len(msgs)-1].Meta)
		tb.eval(`document.querySelectorAll('.sources').forEach(d => d.open = true)`, nil)
		tb.screenshot("chat-desktop")

		// The network drops; while the page is offline the conversation
		// goes on (from another device); it comes back and catches up,
		// showing each message once.
		proxy.pause(true)
		proxy.drop()
		tb.waitFor(`document.body.dataset.connected === "false"`, "the page to notice the drop")
		s.post(t, conv, "Do you also ship to Canada?", "other-device-1")
		msgs = s.settle(t, conv)
		proxy.pause(false)
		tb.waitFor(fmt.Sprintf(`document.querySelectorAll('#messages > li[data-seq]:not(.state)').length >= %d`, len(msgs)), "the messages sent while offline")
		tb.waitFor(`document.body.dataset.connected === "true"`, "the reconnection")
		// One more turn over the new socket.
		tb.do(
			chromedp.SendKeys(chromedp.ID("input"), "Thanks! How long do refunds take?"),
			chromedp.Click(chromedp.ID("send")),
		)
		tb.waitFor(`!document.querySelector('#messages > li[data-cid]')`, "the message to be stored")
		msgs = s.settle(t, conv)
		tb.waitFor(fmt.Sprintf(`document.querySelectorAll('#messages > li[data-seq]:not(.state)').length >= %d`, len(msgs)), "the last reply")
		matchTranscript(t, tb.shown(), msgs)
		customers := 0
		for _, m := range msgs {
			if m.Role == "customer" {
				customers++
			}
		}
		if customers != 3 {
			t.Fatalf("server stored %d customer messages, want 3 (nothing resent twice)", customers)
		}

		// A reload (here: a phone-sized tab of the same browser) resumes
		// the conversation from localStorage.
		ph := tb.sibling(phone)
		ph.open("/chat")
		ph.waitFor(fmt.Sprintf(`document.querySelectorAll('#messages > li[data-seq]:not(.state)').length >= %d`, len(msgs)), "the resumed conversation")
		matchTranscript(t, ph.shown(), msgs)
		ph.screenshot("chat-phone")

		// Asking for a person: the page shows what the server does.
		ph.do(chromedp.Click(chromedp.ID("human")))
		ph.waitFor(`!document.querySelector('#messages > li[data-cid]')`, "the request for a person to be stored")
		msgs = quiet(t, s, conv)
		ph.waitFor(fmt.Sprintf(`document.querySelectorAll('#messages > li[data-seq]:not(.state)').length >= %d`, len(msgs)), "the answer to the request for a person")
		matchTranscript(t, ph.shown(), msgs)
		var state struct{ State string }
		s.do(t, "GET", "/api/v1/conversations/"+conv.ID, conv.Token, nil).expect(t, http.StatusOK).decode(t, &state)
		t.Logf("after asking for a person the conversation is %s", state.State)
		ph.screenshot("chat-phone-handoff")
	})

	t.Run("ChatInChinese", func(t *testing.T) {
		tb := newTab(t, bctx, proxy.URL(), phone, true)
		tb.open("/chat?lang=zh")
		var human string
		tb.eval(`document.querySelector('#human').textContent.trim()`, &human)
		if human != "转人工客服" {
			t.Fatalf("the Chinese page's person button says %q", human)
		}
		tb.screenshot("chat-phone-zh")
	})

	t.Run("KnowledgeUploadAndTest", func(t *testing.T) {
		tb := newTab(t, bctx, proxy.URL(), desktop, true)
		tb.open("/knowledge")
		tb.screenshot("signin-desktop")
		tb.signIn("editor@example.com")
		tb.waitFor(`document.querySelectorAll('#docs li[data-id]').length === 3`, "the three loaded documents")

		// Upload a document through the file input (what a drop does too).
		file := filepath.Join(t.TempDir(), "warranty-and-repairs.md")
		data, err := os.ReadFile(filepath.Join("..", "..", "examples", "en", "warranty-and-repairs.md"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, data, 0o644); err != nil {
			t.Fatal(err)
		}
		tb.do(chromedp.SetUploadFiles(chromedp.ID("upload-input"), []string{file}))
		tb.waitFor(`document.querySelectorAll('#docs li[data-id]').length === 4`, "the uploaded document in the list")
		docs, err := s.Knowledge.List(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var uploaded knowledge.Document
		for _, d := range docs {
			if d.SourceName == "warranty-and-repairs.md" {
				uploaded = d
			}
		}
		if uploaded.ID == "" {
			t.Fatalf("the server has no document from warranty-and-repairs.md: %+v", docs)
		}
		var title string
		tb.eval(fmt.Sprintf(`document.querySelector('#docs li[data-id="%s"] .title').textContent`, uploaded.ID), &title)
		if title != uploaded.Title {
			t.Fatalf("the list shows %q for the upload, the server %q", title, uploaded.Title)
		}
		// Its details: versions and chunks.
		tb.do(chromedp.Click(chromedp.CSS(fmt.Sprintf(`#docs li[data-id="%s"] button`, uploaded.ID))))
		tb.waitFor(fmt.Sprintf(`document.querySelectorAll('#panel-doc .chunk').length === %d`, uploaded.Chunks), "the document's chunks")
		tb.screenshot("knowledge-desktop")

		// The test box finds it.
		tb.do(
			chromedp.Click(chromedp.ID("tab-test")),
			chromedp.SendKeys(chromedp.ID("test-text"), "How long is the warranty on a suitcase?"),
			chromedp.Click(chromedp.ID("test-run")),
		)
		tb.waitFor(`!!document.querySelector('#test-hits .hit')`, "the test box's results")
		var found []string
		tb.eval(`[...document.querySelectorAll('#test-result button')].map(b => b.textContent)`, &found)
		if !slices.Contains(found, uploaded.Title) {
			t.Fatalf("the test box does not point to %q: %v", uploaded.Title, found)
		}
		tb.screenshot("knowledge-test-desktop")

		// Unanswered questions (the chat above left some, if the bot
		// recorded them) become FAQ entries in one click.
		var report struct {
			Questions []struct{ Text string } `json:"questions"`
		}
		var login struct{ Token string }
		s.login(t, "editor@example.com", staffPassword).expect(t, http.StatusOK).decode(t, &login)
		if r := s.do(t, "GET", "/api/v1/reports/unanswered", login.Token, nil); r.status == http.StatusOK {
			r.decode(t, &report)
		}
		tb.do(chromedp.Click(chromedp.ID("tab-unanswered")))
		if len(report.Questions) == 0 {
			t.Log("no unanswered questions recorded; the one-click FAQ is not exercised")
			tb.waitFor(`!document.querySelector('#panel-unanswered > .empty:only-child')`, "the unanswered tab")
		} else {
			q := report.Questions[0].Text
			tb.waitFor(`!!document.querySelector('#panel-unanswered .unanswered li button')`, "the unanswered questions")
			tb.screenshot("knowledge-unanswered-desktop")
			tb.do(chromedp.Click(chromedp.CSS("#panel-unanswered .unanswered li button")))
			tb.do(
				chromedp.SendKeys(chromedp.CSS("#panel-unanswered .faq-form textarea"), "Yes, we ship to Canada in 5 to 8 business days."),
				chromedp.Click(chromedp.CSS("#panel-unanswered .faq-form button[type=submit]")),
			)
			tb.waitFor(`document.querySelectorAll('#docs li[data-id]').length === 5`, "the new FAQ document")
			docs, err := s.Knowledge.List(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, d := range docs {
				found = found || (d.Title == "FAQ: "+q && d.Format == "csv" && d.Chunks == 1)
			}
			if !found {
				t.Fatalf("no one-row FAQ document for %q: %+v", q, docs)
			}
		}

		ph := tb.sibling(phone)
		ph.open("/knowledge")
		ph.waitFor(`document.querySelectorAll('#docs li[data-id]').length >= 4`, "the list on a phone")
		ph.screenshot("knowledge-phone")
	})

	t.Run("HandoffToAgentAndRating", func(t *testing.T) {
		agent := newTab(t, bctx, proxy.URL(), desktop, true)
		agent.open("/console")
		agent.signIn("agent@example.com")
		agent.waitFor(`document.querySelector('#live')?.textContent === 'live'`, "the console's live connection")
		agent.eval(`(() => { const p = document.querySelector('#presence'); p.value = 'online'; p.dispatchEvent(new Event('change')); return true })()`, nil)
		agent.waitFor(`document.querySelector('.presence .dot').classList.contains('online')`, "the agent to be online")

		// Another person, in their own browser, asks for a person.
		cust := newTab(t, bctx, proxy.URL(), desktop, true)
		cust.open("/chat")
		cust.do(
			chromedp.SendKeys(chromedp.ID("input"), "My suitcase handle broke on the first trip"),
			chromedp.Click(chromedp.ID("send")),
		)
		cust.waitFor(`!document.querySelector('#messages > li[data-cid]')`, "the first message to be stored")
		conv := cust.conversationOf()
		quiet(t, s, conv)
		cust.do(chromedp.Click(chromedp.ID("human")))
		cust.waitFor(`!document.querySelector('#messages > li[data-cid]')`, "the request for a person to be stored")
		quiet(t, s, conv)

		// The console gets it: assigned at once (the agent is online) or
		// waiting in the queue for a claim.
		if agent.openConversation(conv.ID) {
			// Auto-assignment may take it meanwhile: then there is
			// nothing to claim.
			agent.waitFor(`document.querySelector('#thread-state')?.textContent === 'Yours' || [...document.querySelectorAll('.thread-head button')].some(b => b.textContent === 'Claim')`, "the claim button")
			agent.eval(`[...document.querySelectorAll('.thread-head button')].find(b => b.textContent === 'Claim')?.click()`, nil)
		}
		agent.waitFor(`document.querySelector('#thread-state')?.textContent === 'Yours'`, "the conversation to be the agent's")
		tr, err := s.Conv.Transcript(context.Background(), conv.ID)
		if err != nil {
			t.Fatal(err)
		}
		if tr.Handoff != nil {
			agent.waitFor(`!!document.querySelector('#packet')`, "the handoff packet")
			var packet string
			agent.eval(`document.querySelector('#packet').textContent`, &packet)
			if tr.Handoff.Summary != "" && !strings.Contains(packet, tr.Handoff.Summary) {
				t.Errorf("the packet does not show the summary %q: %s", tr.Handoff.Summary, packet)
			}
		}
		// A suggestion from the bot, if it has one, lands in the box.
		agent.do(chromedp.Click(chromedp.ID("suggest-btn")))
		agent.waitFor(`!document.querySelector('#suggest-btn').disabled`, "the suggestion request")
		const reply = "Hi, I am sorry about the handle. I will book a free repair under the warranty for you."
		agent.do(
			chromedp.SendKeys(chromedp.ID("reply"), reply),
			chromedp.Click(chromedp.ID("reply-send")),
		)
		agent.waitFor(`!document.querySelector('#thread [data-pending]')`, "the reply to be stored")
		cust.waitFor(fmt.Sprintf(`[...document.querySelectorAll('#messages li.msg-agent .bubble')].some(b => b.textContent === %q)`, reply), "the agent's reply on the customer's page")
		var who string
		cust.eval(`document.querySelector('#messages li.msg-agent .who').textContent`, &who)
		if who != "Alex Agent" {
			t.Errorf("the customer sees the reply from %q, want the agent's name", who)
		}
		agent.screenshot("console-desktop")
		agent.eval(`document.querySelector('#thread').scrollTop = 0`, nil)
		agent.screenshot("console-packet-desktop")

		// The agent closes; the customer rates.
		agent.eval(`[...document.querySelectorAll('.thread-head button')].find(b => b.textContent === 'Close').click()`, nil)
		agent.waitFor(`document.querySelector('#thread-state')?.textContent === 'Closed'`, "the closed conversation")
		cust.waitFor(`!!document.querySelector('.csat')`, "the rating card")
		cust.screenshot("chat-rating-desktop")
		cust.do(
			chromedp.Click(chromedp.CSS(".csat .stars label:nth-of-type(4)")),
			chromedp.SendKeys(chromedp.CSS(".csat textarea"), "Quick and kind, thanks"),
			chromedp.Click(chromedp.CSS(".csat button[type=submit]")),
		)
		cust.waitFor(`!!document.querySelector('.csat-done')`, "the thanks for the rating")
		deadline := time.Now().Add(wait)
		for {
			tr, err = s.Conv.Transcript(context.Background(), conv.ID)
			if err != nil {
				t.Fatal(err)
			}
			if len(tr.CSAT) > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the rating never reached the server")
			}
			time.Sleep(50 * time.Millisecond)
		}
		if tr.CSAT[0].Score != 4 || tr.CSAT[0].Comment != "Quick and kind, thanks" {
			t.Fatalf("stored rating %+v, want 4 with the comment", tr.CSAT[0])
		}
		agent.waitFor(`document.querySelector('#thread').textContent.includes('Customer rated')`, "the rating on the console")
		agent.screenshot("console-closed-desktop")

		ph := agent.sibling(phone)
		ph.open("/console")
		ph.waitFor(`document.body.dataset.signedIn === "true"`, "the console on a phone")
		ph.screenshot("console-phone")
	})

	t.Run("AdminAndLanding", func(t *testing.T) {
		var login struct{ Token string }
		s.login(t, "admin@example.com", staffPassword).expect(t, http.StatusOK).decode(t, &login)
		s.do(t, "POST", "/api/v1/teams", login.Token, map[string]any{"name": "support", "timezone": "Europe/Berlin", "sla_seconds": 300,
			"hours": map[string]string{"mon": "09:00-17:00", "tue": "09:00-17:00", "wed": "09:00-17:00", "thu": "09:00-17:00", "fri": "09:00-16:00"}}).expect(t, http.StatusCreated)
		for _, vp := range []viewport{desktop, phone} {
			tb := newTab(t, bctx, proxy.URL(), vp, true)
			tb.open("/admin")
			tb.signIn("admin@example.com")
			tb.waitFor(`!!document.querySelector('#kpi-out') && !document.querySelector('#kpi-loading')`, "the dashboard")
			var shownConvs string
			tb.eval(`document.querySelector('.kpi .value')?.textContent || ''`, &shownConvs)
			var convs int
			if err := s.Pool.QueryRow(context.Background(), `SELECT count(*) FROM conversations`).Scan(&convs); err != nil {
				t.Fatal(err)
			}
			if shownConvs != fmt.Sprint(convs) {
				t.Errorf("the dashboard shows %q conversations, the database has %d", shownConvs, convs)
			}
			tb.screenshot("admin-" + vp.name)
			for _, section := range []string{"teams", "intents", "thresholds"} {
				tb.do(chromedp.Click(chromedp.CSS(fmt.Sprintf(`.sidenav button[data-key=%q]`, section))))
				tb.waitFor(`!document.querySelector('#admin-loading')`, "the "+section+" section")
				if vp == desktop {
					tb.screenshot("admin-" + section + "-" + vp.name)
				}
			}
			if vp == desktop {
				tb.adminCreatesUser(s)
			}

			// The landing page, with the widget open on it.
			tb.do(chromedp.Navigate(tb.base + "/"))
			tb.waitFor(`!!document.querySelector('#tandem-widget')`, "the widget's launcher")
			tb.screenshot("landing-" + vp.name)
			tb.eval(`window.Tandem.open(), true`, nil)
			tb.waitFor(`(() => { const f = document.querySelector('#tandem-widget').shadowRoot.querySelector('iframe'); return f && f.contentDocument && f.contentDocument.body && f.contentDocument.body.dataset.ready === 'true' })()`, "the chat in the widget")
			tb.screenshot("widget-" + vp.name)
		}
	})
}

// adminCreatesUser creates an editor in the admin page's Users section,
// checks the new row and the database, that unticking their only role is
// refused in plain words, and that the admin's own admin role cannot be
// unticked.
func (tb *tab) adminCreatesUser(s *server) {
	t := tb.t
	t.Helper()
	tb.do(chromedp.Click(chromedp.CSS(`.sidenav button[data-key="people"]`)))
	tb.waitFor(`!!document.querySelector('#user-create')`, "the new-user form")
	tb.do(
		chromedp.SendKeys(chromedp.ID("user-email"), "sam@example.com"),
		chromedp.SendKeys(chromedp.ID("user-name"), "Sam Support"),
		chromedp.SendKeys(chromedp.ID("user-password"), "a long enough password"),
		chromedp.Click(chromedp.ID("user-role-agent")), // ticked by default: untick
		chromedp.Click(chromedp.ID("user-role-editor")),
		chromedp.Click(chromedp.CSS("#user-create button[type=submit]")),
	)
	tb.waitFor(`!!document.querySelector('#users-table tr[data-email="sam@example.com"]')`, "the new user's row")
	var roles []string
	tb.eval(`[...document.querySelectorAll('#users-table tr[data-email="sam@example.com"] input:checked')].map((x) => x.value)`, &roles)
	if strings.Join(roles, ",") != "editor" {
		t.Errorf("the new user's row ticks %v, want [editor]", roles)
	}
	// Unticking the only role is refused, said in the card, and undone.
	tb.do(chromedp.Click(chromedp.CSS(`#users-table tr[data-email="sam@example.com"] input[value=editor]`)))
	tb.waitFor(`(() => { const e = document.querySelector('#users-error'); return e && e.offsetParent !== null && e.textContent.includes('at least one role') })()`,
		"the error about the last role")
	tb.waitFor(`document.querySelector('#users-table tr[data-email="sam@example.com"] input[value=editor]').checked`, "the role ticked again")
	var locked bool
	tb.eval(`document.querySelector('#users-table tr[data-email="admin@example.com"] input[value=admin]').disabled`, &locked)
	if !locked {
		t.Error("the admin can untick their own admin role")
	}
	tb.eval(`document.querySelector('#users-table').scrollIntoView(), true`, nil)
	tb.screenshot("admin-users-desktop")
	var dbRoles []string
	if err := s.Pool.QueryRow(context.Background(), `SELECT roles FROM users WHERE email = 'sam@example.com'`).Scan(&dbRoles); err != nil {
		t.Fatal(err)
	}
	if strings.Join(dbRoles, ",") != "editor" {
		t.Errorf("stored roles %v, want [editor]", dbRoles)
	}
}

// inlineCode finds inline scripts, style attributes and event handler
// attributes, which the pages' CSP would block.
var inlineCode = regexp.MustCompile(`<script>|<script [^>]*>[^<]|\sstyle=|\son[a-z]+=`)

// TestPages checks what every page is served with: security headers, the
// chat page framable only by allowed origins, the widget script loadable by
// any site.
func TestPages(t *testing.T) {
	t.Parallel()
	s := startServer(t, dbtest.New(t))
	for _, path := range []string{"/", "/chat", "/console", "/knowledge", "/admin"} {
		r := s.do(t, "GET", path, "", nil).expect(t, http.StatusOK)
		if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
			t.Errorf("%s: Content-Type %q", path, ct)
		}
		csp := r.header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'self'", "script-src 'self'", "object-src 'none'", "base-uri 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: CSP %q lacks %q", path, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
			t.Errorf("%s: CSP allows inline code: %q", path, csp)
		}
		if r.header.Get("X-Content-Type-Options") != "nosniff" || r.header.Get("Referrer-Policy") == "" {
			t.Errorf("%s: missing nosniff or Referrer-Policy: %v", path, r.header)
		}
		framable := path == "/chat"
		if got := strings.Contains(csp, "frame-ancestors 'none'"); got == framable {
			t.Errorf("%s: CSP %q (framable %v)", path, csp, framable)
		}
		if framable && !strings.Contains(csp, "frame-ancestors 'self'") {
			t.Errorf("%s: the chat page cannot be framed by the widget: %q", path, csp)
		}
		if got := r.header.Get("X-Frame-Options"); (got == "DENY") == framable {
			t.Errorf("%s: X-Frame-Options %q", path, got)
		}
		if inlineCode.Match(r.body) {
			t.Errorf("%s has inline script, style or handler attributes, which the CSP blocks", path)
		}
	}
	w := s.do(t, "GET", "/widget.js", "", nil, "Origin", "https://shop.example.com").expect(t, http.StatusOK)
	if w.header.Get("Access-Control-Allow-Origin") != "*" || w.header.Get("Cross-Origin-Resource-Policy") != "cross-origin" ||
		!strings.HasPrefix(w.header.Get("Content-Type"), "text/javascript") {
		t.Errorf("/widget.js headers %v", w.header)
	}
	a := s.do(t, "GET", "/ui/chat.js", "", nil).expect(t, http.StatusOK)
	etag := a.header.Get("ETag")
	if etag == "" || !strings.HasPrefix(a.header.Get("Content-Type"), "text/javascript") {
		t.Errorf("/ui/chat.js headers %v", a.header)
	}
	s.do(t, "GET", "/ui/chat.js", "", nil, "If-None-Match", etag).expect(t, http.StatusNotModified)
	if code := s.do(t, "GET", "/ui/nope.js", "", nil).expect(t, http.StatusNotFound).errorCode(t); code != "not_found" {
		t.Errorf("unknown asset: code %q", code)
	}
	s.do(t, "GET", "/ui/chat.html", "", nil).expect(t, http.StatusNotFound)
}

// fakeLLM is an OpenAI-compatible endpoint whose streamed answers come in
// slow pieces, so a page can be seen mid-stream.
func fakeLLM(t *testing.T, pieces []string, gap time.Duration) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Stream bool `json:"stream"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		if !strings.HasSuffix(r.URL.Path, "/chat/completions") {
			http.Error(w, `{"error":{"message":"not here"}}`, http.StatusNotFound)
			return
		}
		if !req.Stream {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"id":"x","object":"chat.completion","created":1,"model":"fake","choices":[{"index":0,"message":{"role":"assistant","content":"A customer needs help."},"finish_reason":"stop"}]}`)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fl, _ := w.(http.Flusher)
		for _, p := range pieces {
			b, _ := json.Marshal(map[string]any{"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "fake",
				"choices": []map[string]any{{"index": 0, "delta": map[string]string{"content": p}}}})
			fmt.Fprintf(w, "data: %s\n\n", b)
			if fl != nil {
				fl.Flush()
			}
			time.Sleep(gap)
		}
		fmt.Fprint(w, "data: [DONE]\n\n")
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/v1"
}

// startServerWith is startServer with more environment, for LLM mode.
func startServerWith(t *testing.T, dbURL string, extra map[string]string) *server {
	t.Helper()
	env := map[string]string{
		"DATABASE_URL": dbURL, "TANDEM_ADDR": "127.0.0.1:0", "TANDEM_SECRET": testSecret,
		"TANDEM_DATA_DIR": t.TempDir(), "TANDEM_WAIT_TIMEOUT": "5s", "TANDEM_DB_MAX_CONNS": "8",
	}
	for k, v := range extra {
		env[k] = v
	}
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.ResolveLocal(); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := NewMain(ctx, cfg, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Run(ctx); err != nil {
		m.Close()
		t.Fatal(err)
	}
	s := &server{Main: m, t: t, hc: &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{}}}
	t.Cleanup(func() {
		if err := s.close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		s.hc.CloseIdleConnections()
	})
	return s
}

// TestBrowserStreaming: with an LLM the bot's answer streams into the chat
// (bot.delta) and is then replaced by the stored message, shown once.
func TestBrowserStreaming(t *testing.T) {
	t.Parallel()
	bctx := newBrowser(t)
	pieces := []string{"Refunds ", "reach your ", "account within ", "two weeks ", "of our receiving ", "the parcel [1]."}
	s := startServerWith(t, dbtest.New(t), map[string]string{"LLM_BASE_URL": fakeLLM(t, pieces, 300*time.Millisecond), "LLM_API_KEY": "test"})
	loadExamples(t, s)
	tb := newTab(t, bctx, s.URL(), desktop, true)
	tb.open("/chat")
	tb.do(
		chromedp.SendKeys(chromedp.ID("input"), "How long does a refund take?"),
		chromedp.Click(chromedp.ID("send")),
	)
	tb.waitFor(`(document.querySelector('#messages li.streaming .bubble')?.textContent || '').length > 0`, "the streamed start of the answer")
	var partial string
	tb.eval(`document.querySelector('#messages li.streaming .bubble').textContent`, &partial)
	tb.screenshot("chat-streaming-desktop")
	conv := tb.conversationOf()
	msgs := quiet(t, s, conv)
	tb.waitFor(fmt.Sprintf(`document.querySelectorAll('#messages > li[data-seq]:not(.state)').length >= %d && !document.querySelector('#messages li.streaming')`, len(msgs)), "the stored answer")
	matchTranscript(t, tb.shown(), msgs)
	last := msgs[len(msgs)-1]
	if last.Role != "bot" || !strings.HasPrefix(strings.Join(pieces, ""), strings.TrimSpace(partial)) {
		t.Fatalf("streamed %q, stored %s %q", partial, last.Role, last.Text)
	}
}

// TestBrowserWidgetOnAnotherSite embeds the widget in a page of another
// origin: when TANDEM_ALLOWED_ORIGINS lists it the chat loads in its frame
// and says so to the host page; when not, the frame is refused.
func TestBrowserWidgetOnAnotherSite(t *testing.T) {
	t.Parallel()
	bctx := newBrowser(t)
	var tandem atomic.Value // the Tandem server the shop's page embeds
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><html><head><title>Shop</title></head><body><h1>A shop</h1>
<script>window.addEventListener('message', e => { if (e.data && e.data.tandem === 'ready') document.body.dataset.chat = e.origin })</script>
<script src="%s/widget.js" data-title="Shop support" data-color="#0f766e"></script></body></html>`, tandem.Load())
	}))
	t.Cleanup(site.Close)
	open := func(tb *tab) {
		tb.do(chromedp.Navigate(site.URL + "/"))
		tb.waitFor(`!!window.Tandem && !!document.querySelector('#tandem-widget')`, "the widget on the shop's page")
		tb.eval(`window.Tandem.open(), true`, nil)
	}

	allowed := startServerWith(t, dbtest.New(t), map[string]string{"TANDEM_ALLOWED_ORIGINS": site.URL})
	tandem.Store(allowed.URL())
	tb := newTab(t, bctx, site.URL, desktop, true)
	open(tb)
	tb.waitFor(fmt.Sprintf(`document.body.dataset.chat === %q`, allowed.URL()), "the chat in the widget's frame")
	tb.screenshot("widget-on-another-site-desktop")

	other := startServerWith(t, dbtest.New(t), nil)
	tandem.Store(other.URL())
	open(tb)
	tb.do(chromedp.Sleep(1500 * time.Millisecond))
	var chat string
	tb.eval(`document.body.dataset.chat || ''`, &chat)
	if chat != "" {
		t.Fatalf("a server that does not allow the shop's origin let its chat be framed (%s)", chat)
	}
}
