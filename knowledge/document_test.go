package knowledge_test

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tandem-chat/tandem/internal/db/dbtest"
	"github.com/tandem-chat/tandem/internal/errs"
	"github.com/tandem-chat/tandem/knowledge"
	"github.com/tandem-chat/tandem/retrieval"
)

type kb struct {
	pool *pgxpool.Pool
	ix   *retrieval.Index
	svc  *knowledge.Service
}

func newKB(t *testing.T) *kb {
	t.Helper()
	pool := dbtest.Pool(t)
	ix := retrieval.NewIndex(pool, retrieval.NewLocal())
	if err := ix.EnsureIndex(context.Background()); err != nil {
		t.Fatal(err)
	}
	return &kb{pool: pool, ix: ix, svc: knowledge.NewService(pool, ix)}
}

const shippingMD = `# Shipping

## How long does delivery take?
Standard delivery takes 3 to 5 business days within the country.

## Do you ship abroad?
Yes, we ship to 40 countries; international delivery takes 7 to 14 business days.
`

const returnsCSV = "question,answer,tags\n" +
	"\"怎么申请退货？\",\"收货后30天内可以在订单页面申请退货。\",returns\n" +
	"\"保修期多长？\",\"行李箱外壳享有10年有限保修。\",warranty\n"

func (k *kb) upload(t *testing.T, name, body string, tags ...string) *knowledge.Document {
	t.Helper()
	d, _, err := k.svc.Create(context.Background(), knowledge.Upload{Filename: name, Data: []byte(body), Tags: tags})
	if err != nil {
		t.Fatalf("upload %s: %v", name, err)
	}
	return d
}

func (k *kb) search(t *testing.T, q string, opts ...func(*retrieval.SearchRequest)) []retrieval.Hit {
	t.Helper()
	req := retrieval.SearchRequest{Text: q, K: 5}
	for _, o := range opts {
		o(&req)
	}
	hits, err := k.ix.Search(context.Background(), req)
	if err != nil {
		t.Fatalf("search %q: %v", q, err)
	}
	return hits
}

func (k *kb) counts(t *testing.T) (docs, chunks int) {
	t.Helper()
	ctx := context.Background()
	if err := k.pool.QueryRow(ctx, `SELECT count(*) FROM documents WHERE deleted_at IS NULL`).Scan(&docs); err != nil {
		t.Fatal(err)
	}
	if err := k.pool.QueryRow(ctx, `SELECT count(*) FROM chunks`).Scan(&chunks); err != nil {
		t.Fatal(err)
	}
	return docs, chunks
}

func TestDocumentLifecycle(t *testing.T) {
	k := newKB(t)
	ctx := context.Background()
	d := k.upload(t, "shipping.md", shippingMD, "logistics")
	if d.Version != 1 || d.Chunks != 2 || d.Title != "Shipping" || d.Format != knowledge.Markdown {
		t.Fatalf("created %+v", d)
	}
	if d.Checksum == "" || d.SourceName != "shipping.md" || len(d.Tags) != 1 {
		t.Fatalf("record incomplete: %+v", d)
	}

	t.Run("SearchEnglish", func(t *testing.T) {
		hits := k.search(t, "how many days does delivery take")
		if len(hits) == 0 || hits[0].DocumentID != d.ID || !strings.Contains(hits[0].Text, "3 to 5 business days") {
			t.Fatalf("hits %+v", hits)
		}
		if hits[0].Score <= 0 || hits[0].Score > 1 {
			t.Fatalf("score %v not in (0, 1]", hits[0].Score)
		}
	})

	t.Run("SearchChinese", func(t *testing.T) {
		zh := k.upload(t, "faq.csv", returnsCSV)
		hits := k.search(t, "我想申请退货")
		if len(hits) == 0 || hits[0].DocumentID != zh.ID || hits[0].Question != "怎么申请退货？" {
			t.Fatalf("hits %+v", hits)
		}
		tagged := k.search(t, "保修", func(r *retrieval.SearchRequest) { r.Tags = []string{"warranty"} })
		for _, h := range tagged {
			if h.Question != "保修期多长？" {
				t.Fatalf("tag filter let through %+v", h)
			}
		}
		only := k.search(t, "退货", func(r *retrieval.SearchRequest) { r.DocumentID = d.ID; r.K = 1 })
		if len(only) > 1 || (len(only) == 1 && only[0].DocumentID != d.ID) {
			t.Fatalf("document filter or k ignored: %+v", only)
		}
	})

	t.Run("IdenticalUploadIsNoOp", func(t *testing.T) {
		again, created, err := k.svc.Create(ctx, knowledge.Upload{Filename: "copy.md", Data: []byte(shippingMD)})
		if err != nil || created || again.ID != d.ID || again.Version != 1 {
			t.Fatalf("re-upload: %+v created=%v err=%v", again, created, err)
		}
	})

	t.Run("ReplaceMakesVersion2", func(t *testing.T) {
		v2 := strings.Replace(shippingMD, "3 to 5 business days", "2 to 4 business days", 1)
		nd, changed, err := k.svc.Replace(ctx, d.ID, knowledge.Upload{Filename: "shipping.md", Data: []byte(v2)})
		if err != nil || !changed || nd.Version != 2 || nd.ID != d.ID {
			t.Fatalf("replace: %+v changed=%v err=%v", nd, changed, err)
		}
		hits := k.search(t, "how long does delivery take")
		for _, h := range hits {
			if strings.Contains(h.Text, "3 to 5 business days") {
				t.Fatalf("old version still searchable: %+v", h)
			}
		}
		if len(hits) == 0 || !strings.Contains(hits[0].Text, "2 to 4 business days") {
			t.Fatalf("new version not found: %+v", hits)
		}
		vs, err := k.svc.Versions(ctx, d.ID)
		if err != nil || len(vs) != 2 || vs[0].Version != 2 || vs[1].Version != 1 {
			t.Fatalf("versions %+v err=%v", vs, err)
		}
		same, changed, err := k.svc.Replace(ctx, d.ID, knowledge.Upload{Filename: "shipping.md", Data: []byte(v2)})
		if err != nil || changed || same.Version != 2 {
			t.Fatalf("identical replace: %+v changed=%v err=%v", same, changed, err)
		}
		if tags := nd.Tags; len(tags) != 1 || tags[0] != "logistics" {
			t.Fatalf("a replace without tags must keep them: %v", tags)
		}
	})

	t.Run("ChunksOfDocument", func(t *testing.T) {
		cs, err := k.svc.ChunksOf(ctx, d.ID)
		if err != nil || len(cs) != 2 || cs[0].Question == "" || cs[0].Ordinal != 0 {
			t.Fatalf("chunks %+v err=%v", cs, err)
		}
	})

	t.Run("DeleteRemovesFromSearchAtOnce", func(t *testing.T) {
		if err := k.svc.Delete(ctx, d.ID, ""); err != nil {
			t.Fatal(err)
		}
		for _, h := range k.search(t, "how long does delivery take") {
			if h.DocumentID == d.ID {
				t.Fatalf("deleted document still searchable: %+v", h)
			}
		}
		if _, err := k.svc.Get(ctx, d.ID); errs.CodeOf(err) != errs.NotFound {
			t.Fatalf("get deleted: %v", err)
		}
		if err := k.svc.Delete(ctx, d.ID, ""); errs.CodeOf(err) != errs.NotFound {
			t.Fatalf("delete twice: %v", err)
		}
		if err := k.svc.Delete(ctx, "not-an-id", ""); errs.CodeOf(err) != errs.NotFound {
			t.Fatalf("delete malformed id: %v", err)
		}
	})
}

func TestBadUploadsChangeNothing(t *testing.T) {
	k := newKB(t)
	ctx := context.Background()
	k.upload(t, "shipping.md", shippingMD)
	docs, chunks := k.counts(t)
	k.svc.MaxBytes = 1 << 20
	cases := []struct {
		name, file string
		data       []byte
		want       errs.Code
	}{
		{"Empty", "empty.md", nil, errs.Invalid},
		{"WrongType", "tool.exe", []byte("MZ\x90\x00binary"), errs.Unsupported},
		{"CorruptPDF", "broken.pdf", []byte("%PDF-1.4\n1 0 obj << /Type /Catalog >> garbage"), errs.Invalid},
		{"CSVWithoutColumns", "faq.csv", []byte("title,body\na,b\n"), errs.Invalid},
		{"TooLarge", "big.txt", bytes.Repeat([]byte("a"), 1<<20+1), errs.TooLarge},
		{"NotUTF8", "latin1.txt", []byte("caf\xe9 cr\xe8me \xff\xfe"), errs.Invalid},
		{"JSONNotFAQ", "faq.json", []byte(`{"hello": 1}`), errs.Invalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := k.svc.Create(ctx, knowledge.Upload{Filename: c.file, Data: c.data})
			if errs.CodeOf(err) != c.want {
				t.Fatalf("got %v (%s), want %s", err, errs.CodeOf(err), c.want)
			}
			if msg := errs.MessageOf(err); msg == "" || msg == "internal error" {
				t.Fatalf("no clear message: %q", msg)
			}
			if d, ch := k.counts(t); d != docs || ch != chunks {
				t.Fatalf("knowledge base changed: %d/%d documents, %d/%d chunks", d, docs, ch, chunks)
			}
		})
	}
}

// TestReplaceIsAtomicForSearch searches without pause while a document is
// replaced: every search must find the document, old or new, never neither.
func TestReplaceIsAtomicForSearch(t *testing.T) {
	k := newKB(t)
	ctx := context.Background()
	var b strings.Builder
	b.WriteString("# Warranty\n\n")
	for i := 0; i < 60; i++ {
		b.WriteString("## Section ")
		b.WriteString(strings.Repeat("x", i%7+1))
		b.WriteString("\nThe suitcase shell warranty lasts ten years and covers cracks in normal use.\n\n")
	}
	d := k.upload(t, "warranty.md", b.String())
	var stop atomic.Bool
	var empty, searches atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			hits, err := k.ix.Search(ctx, retrieval.SearchRequest{Text: "suitcase shell warranty", K: 3, DocumentID: d.ID})
			if err != nil {
				t.Error(err)
				return
			}
			searches.Add(1)
			if len(hits) == 0 {
				empty.Add(1)
			}
		}
	}()
	for v := 0; v < 3; v++ {
		body := strings.ReplaceAll(b.String(), "ten years", "ten years (revision "+strings.Repeat("i", v+1)+")")
		if _, _, err := k.svc.Replace(ctx, d.ID, knowledge.Upload{Filename: "warranty.md", Data: []byte(body)}); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	if searches.Load() == 0 || empty.Load() > 0 {
		t.Fatalf("%d of %d searches found nothing during replacement", empty.Load(), searches.Load())
	}
}

func TestReindex(t *testing.T) {
	k := newKB(t)
	ctx := context.Background()
	k.upload(t, "shipping.md", shippingMD)
	n, err := k.ix.Reindex(ctx, true, nil)
	if err != nil || n != 2 {
		t.Fatalf("reindex: %d %v", n, err)
	}
	if hits := k.search(t, "delivery time"); len(hits) == 0 {
		t.Fatal("search after reindex found nothing")
	}
	if stale, err := k.ix.StaleChunks(ctx); err != nil || stale != 0 {
		t.Fatalf("stale after reindex: %d %v", stale, err)
	}
}
