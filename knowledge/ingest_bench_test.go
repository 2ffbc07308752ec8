package knowledge_test

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tandem-chat/tandem/internal/db/dbtest"
	"github.com/tandem-chat/tandem/knowledge"
	"github.com/tandem-chat/tandem/retrieval"
)

// benchData is the shared evaluation data (see ../shared/data/README.md),
// read in place and never copied into the repository.
const benchData = "../../shared/data"

// readTexts returns field of every JSONL record in the file under benchData,
// skipping b when the data is absent.
func readTexts(b *testing.B, rel, field string) []string {
	b.Helper()
	f, err := os.Open(filepath.Join(benchData, rel))
	if err != nil {
		b.Skipf("no shared data (%v)", err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			b.Fatalf("%s: %v", rel, err)
		}
		if s, _ := rec[field].(string); strings.TrimSpace(s) != "" {
			out = append(out, strings.TrimSpace(s))
		}
	}
	if err := sc.Err(); err != nil {
		b.Fatal(err)
	}
	return out
}

// BenchmarkIngest measures ingestion through the real path
// (knowledge.Service.Create: parse, chunk, embed with the local embedder,
// write in one transaction) into an empty knowledge base whose HNSW index
// already exists, as in a running server. Each iteration gets a fresh
// database, made while the timer is stopped.
//
//   - FAQ-JSON-BQ: the 5,172 BQ bank questions (Chinese) as a JSON FAQ
//     sheet, each answered by the next question in the bank, as
//     `tandem eval retrieval` loads it;
//   - FAQ-CSV-Banking77: the 10,003 Banking77 training questions (English)
//     as a CSV FAQ sheet;
//   - Markdown-CLINC150: the CLINC150 training questions as a Markdown
//     handbook, one section per intent, which the chunker cuts into
//     passages.
func BenchmarkIngest(b *testing.B) {
	docs := []struct {
		name, file string
		data       func(b *testing.B) []byte
	}{
		{"FAQ-JSON-BQ", "bq.json", func(b *testing.B) []byte {
			qs := readTexts(b, "bq/dev_faq_bank.jsonl", "question")
			type pair struct {
				Question string `json:"question"`
				Answer   string `json:"answer"`
			}
			out := make([]pair, len(qs))
			for i, q := range qs {
				out[i] = pair{Question: q, Answer: qs[(i+1)%len(qs)]}
			}
			data, err := json.Marshal(out)
			if err != nil {
				b.Fatal(err)
			}
			return data
		}},
		{"FAQ-CSV-Banking77", "banking77.csv", func(b *testing.B) []byte {
			qs := readTexts(b, "banking77/train.jsonl", "text")
			var sb strings.Builder
			w := csv.NewWriter(&sb)
			w.Write([]string{"question", "answer", "tags"})
			for i, q := range qs {
				w.Write([]string{q, qs[(i+7)%len(qs)] + " " + qs[(i+13)%len(qs)], "banking"})
			}
			w.Flush()
			return []byte(sb.String())
		}},
		{"Markdown-CLINC150", "clinc150.md", func(b *testing.B) []byte {
			f, err := os.Open(filepath.Join(benchData, "clinc150/train.jsonl"))
			if err != nil {
				b.Skipf("no shared data (%v)", err)
			}
			defer f.Close()
			byIntent := map[string][]string{}
			var intents []string
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				var rec struct{ Text, Intent, Domain string }
				if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
					b.Fatal(err)
				}
				key := rec.Domain + " > " + strings.ReplaceAll(rec.Intent, "_", " ")
				if byIntent[key] == nil {
					intents = append(intents, key)
				}
				byIntent[key] = append(byIntent[key], rec.Text+".")
			}
			var sb strings.Builder
			sb.WriteString("# Support handbook\n\n")
			for _, k := range intents {
				domain, intent, _ := strings.Cut(k, " > ")
				fmt.Fprintf(&sb, "## %s\n\n### %s\n\n", domain, intent)
				texts := byIntent[k]
				// Paragraphs of five sentences, as a help page would have.
				for i := 0; i < len(texts); i += 5 {
					sb.WriteString(strings.Join(texts[i:min(i+5, len(texts))], " "))
					sb.WriteString("\n\n")
				}
			}
			return []byte(sb.String())
		}},
	}
	for _, d := range docs {
		b.Run(d.name, func(b *testing.B) {
			data := d.data(b)
			ctx := context.Background()
			chunks := 0
			var elapsed time.Duration
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				pool := dbtest.Pool(b)
				ix := retrieval.NewIndex(pool, retrieval.NewLocal())
				if err := ix.EnsureIndex(ctx); err != nil {
					b.Fatal(err)
				}
				svc := knowledge.NewService(pool, ix)
				b.StartTimer()
				start := time.Now()
				doc, created, err := svc.Create(ctx, knowledge.Upload{Filename: d.file, Data: data})
				if err != nil || !created {
					b.Fatalf("create: %v (created %v)", err, created)
				}
				elapsed += time.Since(start)
				chunks += doc.Chunks
				b.StopTimer()
				pool.Close()
			}
			b.ReportMetric(float64(chunks)/elapsed.Seconds(), "chunks/s")
			b.ReportMetric(float64(chunks)/float64(b.N), "chunks/op")
		})
	}
}
