package knowledge_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/tandem-chat/tandem/knowledge"
)

// TestTermStatsFollowChunks loads, replaces and deletes documents, one of
// them larger than a write batch, and checks after each step that
// term_stats holds every lexeme's document frequency as counted from the
// chunks themselves, and that chunks keep their order, text and tags.
func TestTermStatsFollowChunks(t *testing.T) {
	k := newKB(t)
	ctx := context.Background()
	check := func(t *testing.T, step string) {
		t.Helper()
		var diff int
		err := k.pool.QueryRow(ctx, `SELECT count(*) FROM (
			SELECT lexeme, df FROM term_stats WHERE df <> 0
			EXCEPT ALL
			SELECT u.lexeme, count(*)::int FROM chunks, unnest(tsv) u GROUP BY u.lexeme
		) d`).Scan(&diff)
		if err != nil {
			t.Fatal(err)
		}
		var missing int
		err = k.pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT DISTINCT u.lexeme FROM chunks, unnest(tsv) u) c
			WHERE NOT EXISTS (SELECT 1 FROM term_stats t WHERE t.lexeme = c.lexeme AND t.df > 0)`).Scan(&missing)
		if err != nil {
			t.Fatal(err)
		}
		if diff != 0 || missing != 0 {
			t.Fatalf("%s: term_stats off by %d rows, %d lexemes missing", step, diff, missing)
		}
	}

	var big strings.Builder
	big.WriteString("question,answer,tags\n")
	for i := 0; i < 2345; i++ {
		fmt.Fprintf(&big, "\"How do I change card %d?\",\"Open the app, tap card %d, then 更换 %d.\",\"cards,c%d\"\n", i, i, i%17, i%3)
	}
	d := k.upload(t, "cards.csv", big.String(), "bank")
	check(t, "create large")
	cs, err := k.svc.ChunksOf(ctx, d.ID)
	if err != nil || len(cs) != 2345 {
		t.Fatalf("chunks: %d %v", len(cs), err)
	}
	for i, c := range cs {
		want := fmt.Sprintf("How do I change card %d?", i)
		tags := fmt.Sprintf("bank,cards,c%d", i%3)
		if c.Ordinal != i || c.Question != want || strings.Join(c.Tags, ",") != tags {
			t.Fatalf("chunk %d: %+v, want question %q and tags %s", i, c, want, tags)
		}
	}
	hits := k.search(t, "change card 1234")
	if len(hits) == 0 || hits[0].Question != "How do I change card 1234?" {
		t.Fatalf("hits %+v", hits)
	}

	small := k.upload(t, "shipping.md", shippingMD)
	k.upload(t, "faq.csv", returnsCSV)
	check(t, "create small")

	v2 := strings.ReplaceAll(big.String(), "Open the app", "Open the website")
	if _, _, err := k.svc.Replace(ctx, d.ID, knowledge.Upload{Filename: "cards.csv", Data: []byte(v2)}); err != nil {
		t.Fatal(err)
	}
	check(t, "replace")

	if err := k.svc.Delete(ctx, small.ID, ""); err != nil {
		t.Fatal(err)
	}
	check(t, "delete")
	if err := k.svc.Delete(ctx, d.ID, ""); err != nil {
		t.Fatal(err)
	}
	check(t, "delete large")
}
