package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/tandem-chat/tandem/knowledge"
	"github.com/tandem-chat/tandem/retrieval"
)

func cmdEval(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: tandem eval retrieval --bank FILE --queries FILE | tandem eval intents --train FILE [--test FILE]")
	}
	switch args[0] {
	case "retrieval":
		return cmdEvalRetrieval(ctx, args[1:], stdout, stderr)
	case "intents":
		return cmdEvalIntents(ctx, args[1:], stdout, stderr)
	default:
		return fmt.Errorf("unknown evaluation %q (want retrieval or intents)", args[0])
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
	calibrate := fs.Bool("calibrate", false, "also fit the score calibration (P(top hit is right | cosine, lexical coverage)) and print it")
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
	// Hits map back to FAQ ids by question and answer, or by question alone
	// where the chunker changed the answer's text.
	byPair, byQuestion := map[string]string{}, map[string]string{}
	for _, e := range bank {
		q, a := bankPair(e)
		byPair[q+"\x00"+a] = e.FAQID
		byQuestion[q] = e.FAQID
	}
	idOf := func(h retrieval.Hit) string {
		if id, ok := byPair[h.Question+"\x00"+h.Text]; ok {
			return id
		}
		return byQuestion[h.Question]
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
			ids = append(ids, idOf(h))
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
	if !*calibrate {
		return nil
	}
	// One example per query: the features of the top hit that is not the
	// query itself, labelled by whether it answers the query.
	var xs [][2]float64
	var ys []float64
	for _, q := range queries {
		hits, err := ix.Search(ctx, retrieval.SearchRequest{Text: q.Question, K: 3, DocumentID: d.ID})
		if err != nil {
			return err
		}
		for _, h := range hits {
			if h.Question == q.Question {
				continue
			}
			y := 0.0
			for _, id := range q.FAQIDs {
				if idOf(h) == id {
					y = 1
				}
			}
			xs = append(xs, [2]float64{h.Vector, h.Lexical})
			ys = append(ys, y)
			break
		}
	}
	a, b, c := fitLogistic(xs, ys)
	fmt.Fprintf(stdout, "calibration: score = 1/(1+exp(-(%.3f*vector + %.3f*lexical + %.3f))) over %d queries\n", a, b, c, len(xs))
	return nil
}

// fitLogistic fits P(y=1) = sigmoid(a*x0 + b*x1 + c) by gradient descent on
// the log loss.
func fitLogistic(xs [][2]float64, ys []float64) (a, b, c float64) {
	if len(xs) == 0 {
		return 0, 0, 0
	}
	lr := 0.5
	for it := 0; it < 3000; it++ {
		var ga, gb, gc float64
		for i, x := range xs {
			p := 1 / (1 + math.Exp(-(a*x[0] + b*x[1] + c)))
			e := p - ys[i]
			ga += e * x[0]
			gb += e * x[1]
			gc += e
		}
		n := float64(len(xs))
		a -= lr * ga / n
		b -= lr * gb / n
		c -= lr * gc / n
	}
	return a, b, c
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
		q, a := bankPair(e)
		if q == "" {
			continue
		}
		out = append(out, pair{Question: q, Answer: a})
	}
	return json.Marshal(out)
}

// bankPair is the question and answer a bank entry is loaded as: a bank of
// questions only gets each question as its own answer, since a FAQ pair
// needs one.
func bankPair(e retrieval.BankEntry) (q, a string) {
	q, a = strings.TrimSpace(e.Question), strings.TrimSpace(e.Answer)
	if a == "" {
		a = q
	}
	return q, a
}
