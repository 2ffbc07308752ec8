package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"image/jpeg"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/tandem-chat/tandem/handoff"
	"github.com/tandem-chat/tandem/internal/db/dbtest"
	"github.com/tandem-chat/tandem/internal/imaging"
	"github.com/tandem-chat/tandem/internal/imaging/imagetest"
)

// apiAttachment is an attachment as the API shows it.
type apiAttachment struct {
	ID           string `json:"id"`
	Name         string `json:"name"`
	Type         string `json:"type"`
	Size         int64  `json:"size"`
	Width        int    `json:"width"`
	Height       int    `json:"height"`
	URL          string `json:"url"`
	ThumbnailURL string `json:"thumbnail_url"`
}

// attMessage is a message with its attachments.
type attMessage struct {
	apiMessage
	Attachments []apiAttachment `json:"attachments"`
}

// attach uploads a file as the multipart `file` field, with the content type
// the client claims.
func (s *server) attach(t *testing.T, convID, token, name, ctype string, data []byte) *response {
	t.Helper()
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="file"; filename=%q`, name))
	h.Set("Content-Type", ctype)
	part, err := w.CreatePart(h)
	if err != nil {
		t.Fatal(err)
	}
	part.Write(data)
	w.Close()
	req, err := http.NewRequest("POST", s.URL()+"/api/v1/conversations/"+convID+"/attachments", &body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", w.FormDataContentType())
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		t.Fatalf("upload %s: %v", name, err)
	}
	defer resp.Body.Close()
	var raw bytes.Buffer
	raw.ReadFrom(resp.Body)
	return &response{status: resp.StatusCode, header: resp.Header, body: raw.Bytes()}
}

// uploaded uploads a file that must be accepted and returns it.
func (s *server) uploaded(t *testing.T, convID, token, name, ctype string, data []byte) apiAttachment {
	t.Helper()
	var a apiAttachment
	s.attach(t, convID, token, name, ctype, data).expect(t, http.StatusCreated).decode(t, &a)
	if a.ID == "" || a.URL == "" {
		t.Fatalf("upload of %s answered %+v", name, a)
	}
	return a
}

// postAttachments sends a message carrying attachments and returns the answer.
func (s *server) postAttachments(t *testing.T, convID, token, text, clientMsgID string, ids ...string) *response {
	t.Helper()
	if ids == nil {
		ids = []string{}
	}
	return s.do(t, "POST", "/api/v1/conversations/"+convID+"/messages", token,
		map[string]any{"text": text, "attachments": ids, "client_msg_id": clientMsgID})
}

// staffToken signs in one of the accounts staff() creates.
func (s *server) staffToken(t *testing.T, email string) string {
	t.Helper()
	var out struct{ Token string }
	s.login(t, email, staffPassword).expect(t, http.StatusOK).decode(t, &out)
	return out.Token
}

// gpsLatitude is the EXIF latitude of imagetest photos as stored.
func gpsLatitude() []byte {
	var b []byte
	for _, v := range imagetest.Latitude {
		b = binary.LittleEndian.AppendUint32(b, v)
		b = binary.LittleEndian.AppendUint32(b, 1)
	}
	return b
}

func TestAttachments(t *testing.T) {
	t.Parallel()
	s := startServerWith(t, dbtest.New(t), map[string]string{"TANDEM_ATTACHMENT_MAX_BYTES": "256KB"})
	staff(t, s)
	agent := s.staffToken(t, "agent@example.com")
	editor := s.staffToken(t, "editor@example.com")
	c := s.createConversation(t)
	other := s.createConversation(t)
	photo := imagetest.JPEG(imagetest.Pattern(800, 400), 6) // a portrait photo stored sideways, with GPS

	t.Run("PhotoLosesItsLocationAndStaysUpright", func(t *testing.T) {
		a := s.uploaded(t, c.ID, c.Token, "IMG_0001.JPG", "image/jpeg", photo)
		if a.Type != "image/jpeg" || a.Name != "IMG_0001.JPG" || a.Width != 400 || a.Height != 800 || a.ThumbnailURL == "" {
			t.Fatalf("uploaded photo: %+v (want image/jpeg 400x800 as shown, with a thumbnail)", a)
		}
		r := s.do(t, "GET", a.URL, c.Token, nil).expect(t, http.StatusOK)
		if ct := r.header.Get("Content-Type"); ct != "image/jpeg" {
			t.Errorf("Content-Type %q", ct)
		}
		if cd := r.header.Get("Content-Disposition"); cd != `inline; filename=IMG_0001.JPG` {
			t.Errorf("Content-Disposition %q", cd)
		}
		if r.header.Get("X-Content-Type-Options") != "nosniff" || !strings.Contains(r.header.Get("Content-Security-Policy"), "sandbox") {
			t.Errorf("download headers %v", r.header)
		}
		if int64(len(r.body)) != a.Size || len(r.body) >= len(photo) {
			t.Errorf("stored %d bytes (size says %d) of %d uploaded", len(r.body), a.Size, len(photo))
		}
		if bytes.Contains(r.body, []byte(imagetest.Secret)) || bytes.Contains(r.body, gpsLatitude()) || bytes.Contains(r.body, []byte("GPSLatitude")) {
			t.Fatal("the stored photo still carries its metadata (GPS)")
		}
		if o := imaging.Orientation(r.body, imaging.JPEG); o != 6 {
			t.Errorf("stored photo has orientation %d, want 6 (kept)", o)
		}
		img, err := jpeg.Decode(bytes.NewReader(r.body))
		if err != nil || img.Bounds().Dx() != 800 {
			t.Fatalf("stored photo does not decode as the 800x400 original: %v", err)
		}
		th := s.do(t, "GET", a.ThumbnailURL, c.Token, nil).expect(t, http.StatusOK)
		if ct := th.header.Get("Content-Type"); ct != "image/jpeg" {
			t.Errorf("thumbnail Content-Type %q", ct)
		}
		timg, err := jpeg.Decode(bytes.NewReader(th.body))
		if err != nil {
			t.Fatal(err)
		}
		if b := timg.Bounds(); b.Dx() != 160 || b.Dy() != 320 {
			t.Errorf("thumbnail is %dx%d, want 160x320 (upright, at most 320)", b.Dx(), b.Dy())
		}
		if r, _, _, _ := timg.At(120, 40).RGBA(); r < 0xC000 {
			t.Errorf("the thumbnail is not turned upright (top-right should be red)")
		}
		if bytes.Contains(th.body, []byte(imagetest.Secret)) {
			t.Error("the thumbnail carries metadata")
		}
		// Cached privately, revalidated by ETag.
		etag := th.header.Get("ETag")
		s.do(t, "GET", a.ThumbnailURL, c.Token, nil, "If-None-Match", etag).expect(t, http.StatusNotModified)
	})

	t.Run("TheContentDecidesTheType", func(t *testing.T) {
		png := imagetest.PNG(imagetest.Pattern(40, 30), 1)
		a := s.uploaded(t, c.ID, c.Token, "receipt.pdf", "application/pdf", png)
		if a.Type != "image/png" || a.Name != "receipt.png" || a.ThumbnailURL == "" {
			t.Errorf("a PNG named .pdf was stored as %+v; want image/png named receipt.png", a)
		}
		r := s.do(t, "GET", a.URL, c.Token, nil).expect(t, http.StatusOK)
		if r.header.Get("Content-Type") != "image/png" || bytes.Contains(r.body, []byte(imagetest.Secret)) {
			t.Errorf("PNG served as %q, metadata kept: %v", r.header.Get("Content-Type"), bytes.Contains(r.body, []byte(imagetest.Secret)))
		}

		exe := append([]byte("MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff"), bytes.Repeat([]byte{0, 0xb8, 7, 0x40}, 500)...)
		for _, bad := range []struct {
			name, ctype string
			data        []byte
		}{
			{"virus.jpg", "image/jpeg", exe},
			{"page.txt", "text/plain", []byte("<!DOCTYPE html><html><script>alert(1)</script></html>")},
			{"broken.jpg", "image/jpeg", append([]byte("\xff\xd8\xff\xe0\x00\x10JFIF\x00"), bytes.Repeat([]byte{1}, 300)...)},
			{"utf16.txt", "text/plain", []byte("\xff\xfeh\x00i\x00")},
		} {
			r := s.attach(t, c.ID, c.Token, bad.name, bad.ctype, bad.data).expect(t, http.StatusUnsupportedMediaType)
			if code := r.errorCode(t); code != "unsupported_media_type" {
				t.Errorf("%s: code %q", bad.name, code)
			}
		}

		// SVG (scripts inside) is not an image type accepted; its text is
		// kept as text, served as such.
		svg := s.uploaded(t, c.ID, c.Token, "logo.svg", "image/svg+xml", []byte(`<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>`))
		if svg.Type != "text/plain" || svg.Name != "logo.txt" || svg.ThumbnailURL != "" {
			t.Errorf("SVG upload %+v", svg)
		}
		txt := s.uploaded(t, c.ID, c.Token, "notes.md", "application/octet-stream", []byte("Order 1234: the zipper broke after two days.\n"))
		if txt.Type != "text/plain" || txt.Name != "notes.md" || txt.ThumbnailURL != "" {
			t.Errorf("text upload %+v", txt)
		}
		if ct := s.do(t, "GET", txt.URL, c.Token, nil).expect(t, http.StatusOK).header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
			t.Errorf("text served as %q", ct)
		}
		pdf := s.uploaded(t, c.ID, c.Token, `..\..\invoice`, "", []byte("%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"))
		if pdf.Type != "application/pdf" || pdf.Name != "invoice.pdf" {
			t.Errorf("PDF upload %+v", pdf)
		}
		weird := s.uploaded(t, c.ID, c.Token, "fac\u202Egpj.exe", "image/jpeg", photo)
		if strings.ContainsRune(weird.Name, '\u202E') || !strings.HasSuffix(weird.Name, ".jpg") {
			t.Errorf("a name with a right-to-left override was kept as %q", weird.Name)
		}
		r = s.do(t, "GET", weird.URL, c.Token, nil).expect(t, http.StatusOK)
		if cd := r.header.Get("Content-Disposition"); !strings.HasPrefix(cd, "inline;") || strings.ContainsAny(cd, "\u202E\r\n") {
			t.Errorf("Content-Disposition %q", cd)
		}
	})

	t.Run("Limits", func(t *testing.T) {
		big := bytes.Repeat([]byte("all work and no play makes jack a dull boy\n"), 8000) // 344 KB of text
		r := s.attach(t, c.ID, c.Token, "big.txt", "text/plain", big).expect(t, http.StatusRequestEntityTooLarge)
		if code := r.errorCode(t); code != "too_large" {
			t.Errorf("code %q", code)
		}
		if code := s.attach(t, c.ID, c.Token, "empty.txt", "text/plain", nil).expect(t, http.StatusBadRequest).errorCode(t); code != "invalid" {
			t.Errorf("empty file: code %q", code)
		}
		s.do(t, "POST", "/api/v1/conversations/"+c.ID+"/attachments", c.Token, map[string]string{"file": "x"}).expect(t, http.StatusBadRequest)
	})

	t.Run("MessageWithOnlyAttachments", func(t *testing.T) {
		a := s.uploaded(t, c.ID, c.Token, "zipper.jpg", "image/jpeg", photo)
		b := s.uploaded(t, c.ID, c.Token, "order.txt", "text/plain", []byte("order 1234"))
		conn := s.dial(t, c, s.lastSeq(t, c))
		var out struct{ Message attMessage }
		s.postAttachments(t, c.ID, c.Token, "", "only-photos", a.ID, b.ID).expect(t, http.StatusCreated).decode(t, &out)
		m := out.Message
		if m.Text != "" || len(m.Attachments) != 2 || m.Attachments[0].ID != a.ID || m.Attachments[1].ID != b.ID ||
			m.Attachments[0].ThumbnailURL != a.ThumbnailURL || m.Attachments[0].Width != 400 {
			t.Fatalf("stored message %+v", m)
		}
		// The same client_msg_id stores one message.
		var again struct{ Message attMessage }
		s.postAttachments(t, c.ID, c.Token, "", "only-photos", a.ID, b.ID).expect(t, http.StatusOK).decode(t, &again)
		if again.Message.ID != m.ID {
			t.Errorf("a retry stored a second message")
		}
		// The socket's message frame carries the attachments.
		for {
			_ = conn.SetReadDeadline(time.Now().Add(wait))
			var f struct {
				Type    string
				Seq     int64
				Message *attMessage
			}
			if err := conn.ReadJSON(&f); err != nil {
				t.Fatal(err)
			}
			if f.Type == "message" && f.Seq == m.Seq {
				if len(f.Message.Attachments) != 2 || f.Message.Attachments[0].URL != a.URL {
					t.Fatalf("socket frame %+v", f.Message)
				}
				break
			}
		}
		// So do the message list and the agent's transcript.
		var list struct{ Messages []attMessage }
		s.do(t, "GET", fmt.Sprintf("/api/v1/conversations/%s/messages?after=%d", c.ID, m.Seq-1), c.Token, nil).expect(t, http.StatusOK).decode(t, &list)
		if len(list.Messages) == 0 || len(list.Messages[0].Attachments) != 2 {
			t.Errorf("message list: %+v", list.Messages)
		}
		var tr struct{ Messages []attMessage }
		s.do(t, "GET", "/api/v1/conversations/"+c.ID+"/transcript", agent, nil).expect(t, http.StatusOK).decode(t, &tr)
		found := false
		for _, tm := range tr.Messages {
			found = found || (tm.ID == m.ID && len(tm.Attachments) == 2)
		}
		if !found {
			t.Errorf("the transcript does not show the attachments")
		}

		// What a message may not carry.
		s.postAttachments(t, c.ID, c.Token, "again", "reuse", a.ID).expect(t, http.StatusConflict)
		s.postAttachments(t, c.ID, c.Token, "", "nothing").expect(t, http.StatusBadRequest)
		s.postAttachments(t, c.ID, c.Token, "", "unknown", "00000000-0000-4000-8000-000000000000").expect(t, http.StatusBadRequest)
		s.postAttachments(t, c.ID, c.Token, "", "not-an-id", "../etc/passwd").expect(t, http.StatusBadRequest)
		elsewhere := s.uploaded(t, other.ID, other.Token, "x.txt", "text/plain", []byte("hello"))
		s.postAttachments(t, c.ID, c.Token, "", "elsewhere", elsewhere.ID).expect(t, http.StatusBadRequest)
		many := make([]string, 11)
		for i := range many {
			many[i] = s.uploaded(t, c.ID, c.Token, "n.txt", "text/plain", []byte("n")).ID
		}
		s.postAttachments(t, c.ID, c.Token, "", "too-many", many...).expect(t, http.StatusBadRequest)
	})

	t.Run("AccessControl", func(t *testing.T) {
		a := s.uploaded(t, c.ID, c.Token, "private.jpg", "image/jpeg", photo)
		if st := s.do(t, "GET", a.URL, other.Token, nil).status; st != http.StatusForbidden && st != http.StatusNotFound {
			t.Errorf("another conversation's token: %d", st)
		}
		if st := s.do(t, "GET", a.ThumbnailURL, other.Token, nil).status; st != http.StatusForbidden && st != http.StatusNotFound {
			t.Errorf("another conversation's token, thumbnail: %d", st)
		}
		// Another conversation's path with its own token does not reach it.
		s.do(t, "GET", "/api/v1/conversations/"+other.ID+"/attachments/"+a.ID, other.Token, nil).expect(t, http.StatusNotFound)
		s.do(t, "GET", a.URL, "", nil).expect(t, http.StatusUnauthorized)
		s.do(t, "GET", a.URL, "not-a-token", nil).expect(t, http.StatusUnauthorized)
		s.do(t, "GET", a.URL, editor, nil).expect(t, http.StatusForbidden)
		s.do(t, "GET", a.URL, agent, nil).expect(t, http.StatusOK)
		s.do(t, "GET", "/api/v1/conversations/"+c.ID+"/attachments/00000000-0000-4000-8000-000000000000", c.Token, nil).expect(t, http.StatusNotFound)
		s.do(t, "GET", "/api/v1/conversations/"+c.ID+"/attachments/nope", c.Token, nil).expect(t, http.StatusNotFound)
		s.attach(t, c.ID, other.Token, "x.txt", "text/plain", []byte("hi")).expect(t, http.StatusForbidden)
		s.attach(t, c.ID, "", "x.txt", "text/plain", []byte("hi")).expect(t, http.StatusUnauthorized)

		// An agent's upload stays the agent's until a message carries it.
		label := s.uploaded(t, c.ID, agent, "return-label.pdf", "application/pdf", []byte("%PDF-1.7\nlabel\n%%EOF\n"))
		s.do(t, "GET", label.URL, c.Token, nil).expect(t, http.StatusNotFound)
		// Neither side sends the other's upload.
		s.postAttachments(t, c.ID, agent, "", "agent-sends-customer-photo", a.ID).expect(t, http.StatusBadRequest)
		s.postAttachments(t, c.ID, c.Token, "", "customer-sends-label", label.ID).expect(t, http.StatusBadRequest)
		var out struct{ Message attMessage }
		s.postAttachments(t, c.ID, agent, "Here is your return label.", "label", label.ID).expect(t, http.StatusCreated).decode(t, &out)
		if out.Message.Role != "agent" || len(out.Message.Attachments) != 1 {
			t.Fatalf("agent message %+v", out.Message)
		}
		r := s.do(t, "GET", label.URL, c.Token, nil).expect(t, http.StatusOK)
		if r.header.Get("Content-Type") != "application/pdf" || !strings.Contains(r.header.Get("Content-Disposition"), "return-label.pdf") {
			t.Errorf("label served with %v", r.header)
		}
	})

	t.Run("TheBotDoesNotGuess", func(t *testing.T) {
		ask := func(c conversation) waitResult {
			t.Helper()
			a := s.uploaded(t, c.ID, c.Token, "photo.jpg", "image/jpeg", photo)
			var out waitResult
			s.do(t, "POST", "/api/v1/conversations/"+c.ID+"/messages?wait=true", c.Token,
				map[string]any{"text": "", "attachments": []string{a.ID}}).expect(t, http.StatusCreated).decode(t, &out)
			if out.Reply == nil {
				t.Fatal("no reply to a photo")
			}
			return out
		}
		// A photo out of the blue: the bot says it has it and asks.
		fresh := s.createConversation(t)
		res := ask(fresh)
		if meta(res.Reply, "decision") != "acknowledge" || res.State != "bot" ||
			!strings.Contains(res.Reply.Text, "photo") || strings.Contains(res.Reply.Text, "Talk to a person") {
			t.Errorf("reply to a photo alone: %s %q (%v), state %s", res.Reply.Role, res.Reply.Text, res.Reply.Meta, res.State)
		}
		// After a question about a broken product: the bot offers a person,
		// and hands over only when asked.
		after := s.createConversation(t)
		s.postWait(t, after, "The zipper of my jacket broke after two days, can I return it?")
		res = ask(after)
		if meta(res.Reply, "decision") != "acknowledge" || res.State != "bot" || !strings.Contains(res.Reply.Text, "Talk to a person") {
			t.Errorf("reply to a photo after a return question: %q (%v), state %s", res.Reply.Text, res.Reply.Meta, res.State)
		}
		if res := s.postWait(t, after, "yes, a person please"); res.State != "queued" && res.State != "assigned" {
			t.Errorf("asking for the offered person left the conversation %s", res.State)
		}
		// In Chinese.
		zh := s.createConversation(t)
		s.postWait(t, zh, "我买的鞋子坏了，可以退货吗？")
		if res := ask(zh); !strings.Contains(res.Reply.Text, "照片") || !strings.Contains(res.Reply.Text, "人工") {
			t.Errorf("Chinese reply to a photo: %q", res.Reply.Text)
		}
	})

	t.Run("DeletedWithTheirConversation", func(t *testing.T) {
		ctx := context.Background()
		count := func(q string, args ...any) int {
			var n int
			if err := s.Pool.QueryRow(ctx, q, args...).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		if count(`SELECT count(*) FROM attachment_blobs b JOIN attachments a ON a.id = b.attachment_id WHERE a.conversation_id = $1`, c.ID) == 0 {
			t.Fatal("no stored bytes to delete")
		}
		// Retention deletes conversations; nothing else.
		if _, err := s.Pool.Exec(ctx, `DELETE FROM conversations WHERE id = $1`, c.ID); err != nil {
			t.Fatal(err)
		}
		if n := count(`SELECT count(*) FROM attachments WHERE conversation_id = $1`, c.ID); n != 0 {
			t.Errorf("%d attachment rows outlived their conversation", n)
		}
		if n := count(`SELECT count(*) FROM attachment_blobs WHERE key LIKE $1`, "conversations/"+c.ID+"/%"); n != 0 {
			t.Errorf("%d blobs outlived their conversation", n)
		}
		queued := count(`SELECT count(*) FROM attachment_blob_deletions WHERE key LIKE $1`, "conversations/"+c.ID+"/%")
		if queued == 0 {
			t.Fatal("no blob deletion queued for an object store")
		}
		// An upload nobody sent goes after a day.
		unsent := s.uploaded(t, other.ID, other.Token, "draft.txt", "text/plain", []byte("never sent"))
		if _, err := s.Pool.Exec(ctx, `UPDATE attachments SET created_at = now() - interval '25 hours' WHERE id = $1`, unsent.ID); err != nil {
			t.Fatal(err)
		}
		n, err := s.Conv.SweepAttachments(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n < queued+1 || count(`SELECT count(*) FROM attachment_blob_deletions`) != 0 {
			t.Errorf("the sweep deleted %d blobs (want at least %d) and left %d queued", n, queued+1,
				count(`SELECT count(*) FROM attachment_blob_deletions`))
		}
		s.do(t, "GET", unsent.URL, other.Token, nil).expect(t, http.StatusNotFound)
	})
}

// TestAttachmentsS3 runs the server with TANDEM_ATTACHMENT_STORE=s3 against
// gofakes3 (an in-memory server of the S3 API): uploads land in the bucket
// under the prefix, downloads come from it, and deleting the conversation
// (as retention does) deletes the objects at the next sweep.
func TestAttachmentsS3(t *testing.T) {
	t.Parallel()
	backend := s3mem.New()
	if err := backend.CreateBucket("tandem-files"); err != nil {
		t.Fatal(err)
	}
	s3 := httptest.NewServer(gofakes3.New(backend).Server())
	t.Cleanup(s3.Close)
	s := startServerWith(t, dbtest.New(t), map[string]string{
		"TANDEM_ATTACHMENT_STORE": "s3", "S3_ENDPOINT": s3.URL, "S3_BUCKET": "tandem-files", "S3_REGION": "us-east-1",
		"S3_ACCESS_KEY_ID": "AKIATEST", "S3_SECRET_ACCESS_KEY": "test-secret", "S3_PREFIX": "prod/",
	})
	s.Conv.SetResponder(handoff.Unconfigured{})
	ctx := context.Background()
	objects := func() []string {
		t.Helper()
		list, err := backend.ListBucket("tandem-files", nil, gofakes3.ListBucketPage{})
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, o := range list.Contents {
			keys = append(keys, o.Key)
		}
		return keys
	}
	c := s.createConversation(t)
	photo := imagetest.JPEG(imagetest.Pattern(300, 200), 1)
	a := s.uploaded(t, c.ID, c.Token, "zipper.jpg", "image/jpeg", photo)
	if keys := objects(); len(keys) != 2 || keys[0] != "prod/conversations/"+c.ID+"/"+a.ID {
		t.Fatalf("objects %v: want the photo and its thumbnail under prod/conversations/%s/", keys, c.ID)
	}
	var n int
	if err := s.Pool.QueryRow(ctx, `SELECT count(*) FROM attachment_blobs`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d blobs in the database (%v): want none with the S3 store", n, err)
	}
	s.postAttachments(t, c.ID, c.Token, "", "p1", a.ID).expect(t, http.StatusCreated)
	r := s.do(t, "GET", a.URL, c.Token, nil).expect(t, http.StatusOK)
	if bytes.Contains(r.body, []byte(imagetest.Secret)) || r.header.Get("Content-Type") != "image/jpeg" {
		t.Errorf("download from S3: %v, metadata kept %v", r.header, bytes.Contains(r.body, []byte(imagetest.Secret)))
	}
	s.do(t, "GET", a.ThumbnailURL, c.Token, nil).expect(t, http.StatusOK)

	if _, err := s.Pool.Exec(ctx, `DELETE FROM conversations WHERE id = $1`, c.ID); err != nil {
		t.Fatal(err)
	}
	if keys := objects(); len(keys) != 2 {
		t.Fatalf("objects %v before the sweep", keys)
	}
	if n, err := s.Conv.SweepAttachments(ctx); err != nil || n != 2 {
		t.Fatalf("sweep deleted %d blobs (%v), want 2", n, err)
	}
	if keys := objects(); len(keys) != 0 {
		t.Errorf("objects %v outlived their conversation", keys)
	}

	// A store that goes away: uploads fail with 503, and nothing is kept.
	s3.Close()
	c2 := s.createConversation(t)
	if code := s.attach(t, c2.ID, c2.Token, "x.txt", "text/plain", []byte("hello")).expect(t, http.StatusServiceUnavailable).errorCode(t); code != "unavailable" {
		t.Errorf("code %q", code)
	}
	if err := s.Pool.QueryRow(ctx, `SELECT count(*) FROM attachments WHERE conversation_id = $1`, c2.ID).Scan(&n); err != nil || n != 0 {
		t.Errorf("%d attachment rows kept after a failed upload", n)
	}
}
