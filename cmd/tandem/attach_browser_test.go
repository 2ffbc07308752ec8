package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/tandem-chat/tandem/internal/db/dbtest"
	"github.com/tandem-chat/tandem/internal/imaging/imagetest"
)

// loadedImg is a predicate: an image matching sel has loaded, with its
// natural size.
func loadedImg(sel string) string {
	return fmt.Sprintf(`(() => { const i = document.querySelector(%q); return !!i && i.complete && i.naturalWidth > 0 })()`, sel)
}

// TestBrowserAttachments: a customer attaches a photo in the chat (it
// shows as an upright thumbnail, and the bot acknowledges it); the agent
// sees it in the console, opens the conversation and replies with a picture
// of their own, which the customer sees and opens; a file the server
// refuses is said so in the chat.
func TestBrowserAttachments(t *testing.T) {
	t.Parallel()
	bctx := newBrowser(t)
	s := startServer(t, dbtest.New(t))
	staff(t, s)
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// A portrait photo stored sideways with its GPS position, as phones
	// write them.
	photo := write("zipper.jpg", imagetest.JPEG(imagetest.Pattern(800, 400), 6))
	label := write("return-label.png", imagetest.PNG(imagetest.Pattern(300, 300), 1))
	virus := write("virus.jpg", append([]byte("MZ\x90\x00\x03\x00\x00\x00"), make([]byte, 4000)...))

	cust := newTab(t, bctx, s.URL(), desktop, true)
	cust.open("/chat")
	cust.do(
		chromedp.SendKeys(chromedp.ID("input"), "The zipper of my jacket broke after two days, can I return it?"),
		chromedp.Click(chromedp.ID("send")),
	)
	cust.waitFor(`!document.querySelector('#messages > li[data-cid]')`, "the first message to be stored")
	conv := cust.conversationOf()
	quiet(t, s, conv)

	// The photo, alone.
	cust.do(chromedp.SetUploadFiles(chromedp.ID("attach-input"), []string{photo}))
	cust.waitFor(`!!document.querySelector('#staged li[data-status="ready"] img')`, "the photo uploaded, with its preview")
	cust.do(chromedp.Click(chromedp.ID("send")))
	const custThumb = `#messages > li.msg-customer[data-seq] img.att-thumb`
	cust.waitFor(loadedImg(custThumb), "the photo's thumbnail in the chat")
	var size struct{ W, H int }
	cust.eval(fmt.Sprintf(`(() => { const i = document.querySelector(%q); return {w: i.naturalWidth, h: i.naturalHeight} })()`, custThumb), &size)
	if size.W != 160 || size.H != 320 {
		t.Errorf("the chat shows a %dx%d thumbnail, want 160x320 (upright)", size.W, size.H)
	}
	var staged bool
	cust.eval(`document.querySelector('#staged').hidden`, &staged)
	if !staged {
		t.Error("the sent photo is still waiting above the box")
	}
	msgs := quiet(t, s, conv)
	last := msgs[len(msgs)-1]
	if last.Role != "bot" || !strings.Contains(last.Text, "photo") || !strings.Contains(last.Text, "Talk to a person") {
		t.Errorf("the bot answered the photo with %s %q", last.Role, last.Text)
	}
	cust.waitFor(fmt.Sprintf(`!!document.querySelector('#messages > li[data-seq="%d"]')`, last.Seq), "the bot's acknowledgement")
	cust.screenshot("chat-attachment-desktop")

	// A file the server refuses: the chat says why, and sends nothing.
	cust.do(chromedp.SetUploadFiles(chromedp.ID("attach-input"), []string{virus}))
	cust.waitFor(`!!document.querySelector('#staged li[data-status="failed"]')`, "the refused file")
	var why string
	cust.eval(`document.querySelector('#staged li[data-status="failed"] .staged-status').textContent`, &why)
	if !strings.Contains(why, "cannot be attached") {
		t.Errorf("the refusal says %q", why)
	}
	cust.do(chromedp.Click(chromedp.CSS(`#staged li[data-status="failed"] .staged-remove`)))
	cust.waitFor(`document.querySelector('#staged').hidden`, "the refused file removed")

	// The customer takes up the offer of a person; the agent sees the photo.
	cust.do(chromedp.Click(chromedp.ID("human")))
	cust.waitFor(`!document.querySelector('#messages > li[data-cid]')`, "the request for a person to be stored")
	quiet(t, s, conv)
	agent := newTab(t, bctx, s.URL(), desktop, true)
	agent.open("/console")
	agent.signIn("agent@example.com")
	agent.openConversation(conv.ID)
	const agentSeesPhoto = `#thread .line.customer img.att-thumb`
	agent.waitFor(loadedImg(agentSeesPhoto), "the customer's photo in the console")
	agent.eval(fmt.Sprintf(`(() => { const i = document.querySelector(%q); return {w: i.naturalWidth, h: i.naturalHeight} })()`, agentSeesPhoto), &size)
	if size.W != 160 || size.H != 320 {
		t.Errorf("the console shows a %dx%d thumbnail, want 160x320", size.W, size.H)
	}

	// The agent replies with a picture (writing takes the conversation).
	agent.do(chromedp.SetUploadFiles(chromedp.ID("reply-file"), []string{label}))
	agent.waitFor(`!!document.querySelector('#reply-staged li[data-status="ready"]')`, "the agent's file uploaded")
	const reply = "Here is your return label: print it and stick it on the parcel."
	agent.do(
		chromedp.SendKeys(chromedp.ID("reply"), reply),
		chromedp.Click(chromedp.ID("reply-send")),
	)
	agent.waitFor(`!document.querySelector('#thread [data-pending]')`, "the reply to be stored")
	agent.waitFor(loadedImg(`#thread .line.agent[data-seq] img.att-thumb`), "the agent's picture in the console")
	agent.screenshot("console-attachment-desktop")

	const custSeesLabel = `#messages > li.msg-agent[data-seq] img.att-thumb`
	cust.waitFor(loadedImg(custSeesLabel), "the agent's picture in the chat")
	var text string
	cust.eval(`[...document.querySelectorAll('#messages > li.msg-agent .bubble')].map(b => b.textContent).join('|')`, &text)
	if !strings.Contains(text, reply) {
		t.Errorf("the chat shows the agent's words %q", text)
	}
	// Opening it shows the whole picture.
	cust.do(chromedp.Click(chromedp.CSS(`#messages > li.msg-agent[data-seq] .att-img`)))
	cust.waitFor(loadedImg(`dialog.att-viewer[open] img`), "the whole picture")
	cust.eval(`document.querySelector('dialog.att-viewer img').naturalWidth`, &size.W)
	if size.W != 300 {
		t.Errorf("the viewer shows a picture %d pixels wide, want the original 300", size.W)
	}
	cust.do(chromedp.Click(chromedp.CSS(`dialog.att-viewer .att-close`)))
	cust.waitFor(`!document.querySelector('dialog.att-viewer')`, "the viewer to close")

	// The same conversation on a phone (resumed from storage).
	ph := cust.sibling(phone)
	ph.open("/chat")
	ph.waitFor(loadedImg(custThumb)+" && "+loadedImg(custSeesLabel), "both pictures on the phone")
	ph.screenshot("chat-attachment-phone")
}
