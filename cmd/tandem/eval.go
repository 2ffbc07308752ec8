package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/tandem-chat/tandem/knowledge"
	"github.com/tandem-chat/tandem/retrieval"
)

func cmdEval(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: tandem eval retrieval --bank FILE --queries FILE")
	}
	switch args[0] {
	case "retrieval":
		return cmdEvalRetrieval(ctx, args[1:], stdout, stderr)
	default:
		return fmt.Errorf("unknown evaluation %q (want retrieval)", args[0])
	}
}

// cmdEvalRetrieval loads a FAQ bank through the real ingestion path into a
// scratch database (or the configured one, in a document it deletes after),
// runs every query through hybrid search and prints Recall@1, Recall@5 and
// MRR@10. A query's own text is left out of the bank it searches.
func cmdEvalRetrieval(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("eval retrieval", flag.ContinueOnError)
	fs.SetOutput(stderr)
	bankPath := fs.String("bank", "", "JSONL FAQ bank: {faq_id, question[, answer]}")
	queriesPath := fs.String("queries", "", "JSONL queries: {question, faq_ids}")
	limit := fs.Int("limit", 0, "use only the first N queries (0: all)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return err
	}
	if *bankPath == "" || *queriesPath == "" {
		return errors.New("--bank and --queries are required")
	}
	bank, err := retrieval.LoadBank(*bankPath)
	if err != nil {
		return err
	}
	queries, err := retrieval.LoadQueries(*queriesPath)
	if err != nil {
		return err
	}
	if *limit > 0 && *limit < len(queries) {
		queries = queries[:*limit]
	}
	cfg, pool, err := openStores(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	ix, svc, err := newKnowledge(ctx, cfg, pool, func(string, ...any) {})
	if err != nil {
		return err
	}
	// The bank goes in as one JSON FAQ document, through the same parser,
	// chunker and indexer that editors' uploads use; each FAQ's id rides in
	// a tag so hits map back to it.
	start := time.Now()
	doc, err := bankDocument(bank)
	if err != nil {
		return err
	}
	d, _, err := svc.Create(ctx, knowledge.Upload{Filename: "eval-bank.json", Data: doc, Tags: []string{"tandem-eval"}})
	if err != nil {
		return err
	}
	defer svc.Delete(context.WithoutCancel(ctx), d.ID, "")
	fmt.Fprintf(stderr, "loaded %d FAQ entries in %.1f s\n", len(bank), time.Since(start).Seconds())
	idOf := map[string]string{} // chunk text (question) -> faq id
	for _, e := range bank {
		idOf[e.Question] = e.FAQID
	}
	start = time.Now()
	m, err := retrieval.EvalRanking(ctx, bank, queries, func(ctx context.Context, q string, k int) ([]string, error) {
		hits, err := ix.Search(ctx, retrieval.SearchRequest{Text: q, K: k + 1, DocumentID: d.ID})
		if err != nil {
			return nil, err
		}
		var ids []string
		for _, h := range hits {
			if h.Question == q {
				continue // the query's own text is left out of the bank
			}
			ids = append(ids, idOf[h.Question])
		}
		if len(ids) > k {
			ids = ids[:k]
		}
		return ids, nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "queries %d  bank %d  %s  (%.1f ms/query, embedder %s)\n", len(queries), len(bank), m,
		float64(time.Since(start).Milliseconds())/float64(max(1, len(queries))), ix.Embedder().Name())
	return nil
}

// bankDocument renders a FAQ bank as a JSON FAQ sheet. BQ-style banks have
// questions only; the question then stands as its own answer.
func bankDocument(bank []retrieval.BankEntry) ([]byte, error) {
	type pair struct {
		Question string `json:"question"`
		Answer   string `json:"answer"`
	}
	out := make([]pair, 0, len(bank))
	for _, e := range bank {
		q := strings.TrimSpace(e.Question)
		if q == "" {
			continue
		}
		out = append(out, pair{Question: q, Answer: q})
	}
	return json.Marshal(out)
}
