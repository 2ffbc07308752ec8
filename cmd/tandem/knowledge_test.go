package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandem-chat/tandem/internal/db/dbtest"
)

// staffToken makes a staff user with the given role and returns an API
// token, without paying for a password hash.
func staffToken(t *testing.T, s *server, email, role string) string {
	t.Helper()
	ctx := context.Background()
	var id string
	if err := s.Pool.QueryRow(ctx, `INSERT INTO users (email, display_name, password_hash, roles)
		VALUES ($1, $1, 'x', ARRAY[$2]) RETURNING id`, email, role).Scan(&id); err != nil {
		t.Fatal(err)
	}
	tok, err := s.Auth.NewSession(ctx, id, "api")
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// upload sends a multipart upload and returns the answer.
func (s *server) upload(t *testing.T, method, path, token, field, name string, data []byte, fields ...string) *response {
	t.Helper()
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	if field != "" {
		fw, err := w.CreateFormFile(field, name)
		if err != nil {
			t.Fatal(err)
		}
		fw.Write(data)
	}
	for i := 0; i+1 < len(fields); i += 2 {
		w.WriteField(fields[i], fields[i+1])
	}
	w.Close()
	req, _ := http.NewRequest(method, s.URL()+path, &body)
	req.Header.Set("Content-Type", w.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := s.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return &response{status: resp.StatusCode, header: resp.Header, body: raw}
}

func TestKnowledgeAPI(t *testing.T) {
	s := startPlaceholderServer(t, dbtest.New(t))
	editor := staffToken(t, s, "ed@example.com", "editor")
	agent := staffToken(t, s, "ag@example.com", "agent")
	md := []byte("# Returns\n\n## Can I return an item?\nYes, within 30 days of delivery if unused.\n")

	r := s.upload(t, "POST", "/api/v1/knowledge/documents", agent, "file", "returns.md", md)
	r.expect(t, http.StatusForbidden)

	var created struct {
		ID      string `json:"id"`
		Version int    `json:"version"`
		Chunks  int    `json:"chunks"`
	}
	r = s.upload(t, "POST", "/api/v1/knowledge/documents", editor, "file", "returns.md", md, "title", "Returns policy", "tags", "returns,policy")
	r.expect(t, http.StatusCreated)
	json.Unmarshal(r.body, &created)
	if created.ID == "" || created.Version != 1 || created.Chunks != 1 {
		t.Fatalf("created %s", r.body)
	}

	t.Run("ListAndGet", func(t *testing.T) {
		r := s.do(t, "GET", "/api/v1/knowledge/documents", editor, nil).expect(t, http.StatusOK)
		if !strings.Contains(string(r.body), "Returns policy") {
			t.Fatalf("list %s", r.body)
		}
		r = s.do(t, "GET", "/api/v1/knowledge/documents/"+created.ID, editor, nil).expect(t, http.StatusOK)
		var one struct {
			Chunks   []map[string]any `json:"chunks"`
			Versions []map[string]any `json:"versions"`
		}
		json.Unmarshal(r.body, &one)
		if len(one.Chunks) != 1 || len(one.Versions) != 1 {
			t.Fatalf("get %s", r.body)
		}
		s.do(t, "GET", "/api/v1/knowledge/documents/00000000-0000-0000-0000-000000000000", editor, nil).expect(t, http.StatusNotFound)
	})

	t.Run("Search", func(t *testing.T) {
		r := s.do(t, "POST", "/api/v1/knowledge/search", editor, map[string]any{"query": "can I send it back", "k": 3}).expect(t, http.StatusOK)
		var res struct {
			Hits []struct {
				ChunkID    string  `json:"chunk_id"`
				DocumentID string  `json:"document_id"`
				Title      string  `json:"title"`
				Score      float64 `json:"score"`
			} `json:"hits"`
		}
		json.Unmarshal(r.body, &res)
		if len(res.Hits) == 0 || res.Hits[0].DocumentID != created.ID || res.Hits[0].Title != "Returns policy" || res.Hits[0].ChunkID == "" {
			t.Fatalf("search %s", r.body)
		}
		s.do(t, "POST", "/api/v1/knowledge/search", editor, map[string]any{"query": ""}).expect(t, http.StatusBadRequest)
		s.do(t, "POST", "/api/v1/knowledge/search", editor, "{bad").expect(t, http.StatusBadRequest)
		s.do(t, "POST", "/api/v1/knowledge/search", "", map[string]any{"query": "x"}).expect(t, http.StatusUnauthorized)
	})

	t.Run("BadUploads", func(t *testing.T) {
		s.upload(t, "POST", "/api/v1/knowledge/documents", editor, "file", "virus.exe", []byte("MZ\x90\x00")).expect(t, http.StatusUnsupportedMediaType)
		s.upload(t, "POST", "/api/v1/knowledge/documents", editor, "file", "empty.md", nil).expect(t, http.StatusBadRequest)
		s.upload(t, "POST", "/api/v1/knowledge/documents", editor, "", "", nil, "title", "no file").expect(t, http.StatusBadRequest)
		big := bytes.Repeat([]byte("word "), 21<<20/5)
		s.upload(t, "POST", "/api/v1/knowledge/documents", editor, "file", "big.txt", big).expect(t, http.StatusRequestEntityTooLarge)
		s.do(t, "POST", "/api/v1/knowledge/documents", editor, map[string]any{}).expect(t, http.StatusBadRequest)
		r := s.do(t, "GET", "/api/v1/knowledge/documents", editor, nil)
		if n := strings.Count(string(r.body), `"id"`); n != 1 {
			t.Fatalf("bad uploads changed the list: %s", r.body)
		}
	})

	t.Run("ReplaceAndDelete", func(t *testing.T) {
		v2 := []byte("# Returns\n\n## Can I return an item?\nYes, within 60 days of delivery if unused.\n")
		r := s.upload(t, "PUT", "/api/v1/knowledge/documents/"+created.ID, editor, "file", "returns.md", v2).expect(t, http.StatusOK)
		if !strings.Contains(string(r.body), `"version":2`) {
			t.Fatalf("replace %s", r.body)
		}
		r = s.do(t, "POST", "/api/v1/knowledge/search", editor, map[string]any{"query": "return an item"}).expect(t, http.StatusOK)
		if !strings.Contains(string(r.body), "60 days") || strings.Contains(string(r.body), "30 days") {
			t.Fatalf("search after replace %s", r.body)
		}
		s.do(t, "DELETE", "/api/v1/knowledge/documents/"+created.ID, agent, nil).expect(t, http.StatusForbidden)
		s.do(t, "DELETE", "/api/v1/knowledge/documents/"+created.ID, editor, nil).expect(t, http.StatusNoContent)
		s.do(t, "DELETE", "/api/v1/knowledge/documents/"+created.ID, editor, nil).expect(t, http.StatusNotFound)
		r = s.do(t, "POST", "/api/v1/knowledge/search", editor, map[string]any{"query": "return an item"}).expect(t, http.StatusOK)
		if strings.Contains(string(r.body), created.ID) {
			t.Fatalf("deleted document still found: %s", r.body)
		}
	})
}

func TestIngestCommand(t *testing.T) {
	url := dbtest.New(t)
	t.Setenv("DATABASE_URL", url)
	t.Setenv("TANDEM_DATA_DIR", t.TempDir())
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.md"), []byte("# A\n\nAlpha passage about parcels.\n"), 0o644)
	os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
	os.WriteFile(filepath.Join(dir, "sub", "b.csv"), []byte("question,answer\nWhere is my parcel?,Track it online.\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "README.md"), []byte("# not knowledge\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "notes.bin"), []byte{0, 1, 2}, 0o644)
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"ingest", dir}, &out, &errb); code != 0 {
		t.Fatalf("ingest exit %d: %s %s", code, out.String(), errb.String())
	}
	if !strings.Contains(out.String(), "2 documents loaded (2 chunks)") {
		t.Fatalf("summary: %s", out.String())
	}
	out.Reset()
	if code := run(context.Background(), []string{"ingest", dir}, &out, &errb); code != 0 || !strings.Contains(out.String(), "2 unchanged") {
		t.Fatalf("second ingest: %d %s", code, out.String())
	}
	os.WriteFile(filepath.Join(dir, "a.md"), []byte("# A\n\nAlpha passage about parcels, revised.\n"), 0o644)
	out.Reset()
	if code := run(context.Background(), []string{"ingest", dir}, &out, &errb); code != 0 || !strings.Contains(out.String(), "1 documents loaded") {
		t.Fatalf("changed ingest: %d %s", code, out.String())
	}
	if code := run(context.Background(), []string{"ingest", filepath.Join(dir, "missing.md")}, &out, &errb); code == 0 {
		t.Fatal("ingest of a missing file succeeded")
	}
}

// TestEvalRetrievalCommand runs `tandem eval retrieval` on a small English
// bank with answers: the queries share words with the answers, not the
// questions, so a perfect score shows that answers are indexed and that
// hits map back to their FAQ ids. A query equal to a bank question leaves
// that entry out, so it is answered by its paraphrase.
func TestEvalRetrievalCommand(t *testing.T) {
	url := dbtest.New(t)
	t.Setenv("DATABASE_URL", url)
	t.Setenv("TANDEM_DATA_DIR", t.TempDir())
	dir := t.TempDir()
	bank := filepath.Join(dir, "bank.jsonl")
	queries := filepath.Join(dir, "queries.jsonl")
	os.WriteFile(bank, []byte(`{"faq_id": 1, "question": "How do I send something back?", "answer": "Returns are free within 30 days: print the prepaid label from your order page."}
{"faq_id": 2, "question": "My suitcase zipper broke", "answer": "Zippers are covered by the warranty; our repair centre fixes them in ten days."}
{"faq_id": 3, "question": "Which countries do you deliver to?", "answer": "We ship to the EU, the UK and Switzerland with tracked couriers."}
{"faq_id": 4, "question": "Do you deliver to Switzerland?", "answer": "We ship to the EU, the UK and Switzerland with tracked couriers."}
`), 0o644)
	os.WriteFile(queries, []byte(`{"question": "is there a prepaid label for returns", "faq_ids": [1]}
{"question": "warranty repair centre", "faq_ids": [2]}
{"question": "Which countries do you deliver to?", "faq_ids": [3, 4]}
`), 0o644)
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"eval", "retrieval", "--bank", bank, "--queries", queries}, &out, &errb); code != 0 {
		t.Fatalf("eval exit %d: %s %s", code, out.String(), errb.String())
	}
	if !strings.Contains(out.String(), "queries=3 skipped=0 R@1=1.0000") {
		t.Fatalf("eval output: %s\n%s", out.String(), errb.String())
	}
	if code := run(context.Background(), []string{"eval", "retrieval", "--bank", bank}, &out, &errb); code == 0 {
		t.Fatal("eval without --queries succeeded")
	}
}

// TestIngestSameNameInTwoFolders loads en/faq.csv and zh/faq.csv: two
// documents, both unchanged on the next run (they once replaced each other,
// being named by the file's name alone).
func TestIngestSameNameInTwoFolders(t *testing.T) {
	url := dbtest.New(t)
	t.Setenv("DATABASE_URL", url)
	t.Setenv("TANDEM_DATA_DIR", t.TempDir())
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "en"), 0o755)
	os.MkdirAll(filepath.Join(dir, "zh"), 0o755)
	os.WriteFile(filepath.Join(dir, "en", "faq.csv"), []byte("question,answer\nHow much does shipping cost?,Standard shipping is $6.95.\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "zh", "faq.csv"), []byte("question,answer\n运费多少钱？,标准运费6.95美元。\n"), 0o644)
	for i, want := range []string{"2 documents loaded (2 chunks), 0 unchanged", "0 documents loaded (0 chunks), 2 unchanged"} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), []string{"ingest", dir}, &out, &errb); code != 0 || !strings.Contains(out.String(), want) {
			t.Fatalf("run %d: exit %d, %q, want %q (%s)", i+1, code, out.String(), want, errb.String())
		}
	}
}
