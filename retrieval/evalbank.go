package retrieval

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
)

// BankEntry is one FAQ of an evaluation bank: a line
// {"faq_id": 12, "question": "...", "answer": "..."} of a JSONL file, the
// answer optional. Other fields are ignored.
type BankEntry struct {
	FAQID    string
	Question string
	Answer   string // "" when the bank has questions only
}

// Query is one evaluation query: a line {"question": "...", "faq_ids": [..]}
// whose faq_ids are the bank entries that answer it.
type Query struct {
	Question string
	FAQIDs   []string
}

// Metrics are ranking quality figures over a set of queries. A query counts
// as found at k when any of its FAQ ids is among the first k results.
type Metrics struct {
	Queries   int     // queries evaluated
	Skipped   int     // queries left out: no answer remained in the bank once their own text was removed
	RecallAt1 float64 // share of queries answered by the first result
	RecallAt5 float64 // share answered within the first five
	MRRAt10   float64 // mean reciprocal rank of the first answer within ten, 0 when absent
}

// String formats m on one line for logs and the CLI.
func (m Metrics) String() string {
	return fmt.Sprintf("queries=%d skipped=%d R@1=%.4f R@5=%.4f MRR@10=%.4f",
		m.Queries, m.Skipped, m.RecallAt1, m.RecallAt5, m.MRRAt10)
}

// faqID accepts a JSON number or string, since datasets write ids either way.
type faqID string

func (id *faqID) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*id = faqID(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("faq id %s: want a number or a string", b)
	}
	*id = faqID(n.String())
	return nil
}

// ReadBank reads a JSONL FAQ bank; see BankEntry. A labelled intent data
// set ({"text", "intent"} lines) reads as a bank too, each text a question
// and its intent the FAQ id, so that intent data can stand in for FAQ data
// in a language that has no FAQ set at hand.
func ReadBank(r io.Reader) ([]BankEntry, error) {
	var bank []BankEntry
	err := readJSONL(r, func(line []byte) error {
		var rec struct {
			FAQID    *faqID `json:"faq_id"`
			Question string `json:"question"`
			Answer   string `json:"answer"`
			Text     string `json:"text"`
			Intent   *faqID `json:"intent"`
		}
		if err := json.Unmarshal(line, &rec); err != nil {
			return err
		}
		if rec.FAQID == nil && rec.Question == "" {
			rec.FAQID, rec.Question = rec.Intent, rec.Text
		}
		if rec.FAQID == nil {
			return fmt.Errorf("missing faq_id")
		}
		bank = append(bank, BankEntry{FAQID: string(*rec.FAQID), Question: rec.Question, Answer: rec.Answer})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("retrieval: read bank: %w", err)
	}
	return bank, nil
}

// ReadQueries reads JSONL evaluation queries; see Query. Lines of a
// labelled intent data set ({"text", "intent"}) read as queries answered by
// the bank entries of their intent (see ReadBank).
func ReadQueries(r io.Reader) ([]Query, error) {
	var qs []Query
	err := readJSONL(r, func(line []byte) error {
		var rec struct {
			Question string  `json:"question"`
			FAQIDs   []faqID `json:"faq_ids"`
			Text     string  `json:"text"`
			Intent   *faqID  `json:"intent"`
		}
		if err := json.Unmarshal(line, &rec); err != nil {
			return err
		}
		if rec.Question == "" && rec.FAQIDs == nil && rec.Intent != nil {
			rec.Question, rec.FAQIDs = rec.Text, []faqID{*rec.Intent}
		}
		q := Query{Question: rec.Question, FAQIDs: make([]string, len(rec.FAQIDs))}
		for i, id := range rec.FAQIDs {
			q.FAQIDs[i] = string(id)
		}
		qs = append(qs, q)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("retrieval: read queries: %w", err)
	}
	return qs, nil
}

// LoadBank reads the JSONL FAQ bank in the file at path.
func LoadBank(path string) ([]BankEntry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("retrieval: %w", err)
	}
	defer f.Close()
	return ReadBank(f)
}

// LoadQueries reads the JSONL evaluation queries in the file at path.
func LoadQueries(path string) ([]Query, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("retrieval: %w", err)
	}
	defer f.Close()
	return ReadQueries(f)
}

// readJSONL calls fn with each non-blank line of r, and says which line
// failed.
func readJSONL(r io.Reader, fn func(line []byte) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	n := 0
	for sc.Scan() {
		n++
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		if err := fn(line); err != nil {
			return fmt.Errorf("line %d: %w", n, err)
		}
	}
	return sc.Err()
}

// EvalRanking measures rank, a search over an index of bank, on queries.
// rank returns the FAQ ids of its best k results, best first; the same id
// may come back more than once (several chunks of one FAQ), and only its
// first place counts.
//
// A query's own text may be in the bank: bank entries whose question equals
// the query's text are dropped from its results and from its answers, so a
// search cannot win by finding the query itself. Queries left without an
// answer are skipped and counted in Metrics.Skipped.
func EvalRanking(ctx context.Context, bank []BankEntry, queries []Query, rank func(ctx context.Context, query string, k int) ([]string, error)) (Metrics, error) {
	const depth = 10
	byText := make(map[string][]string, len(bank))
	for _, e := range bank {
		t := strings.TrimSpace(e.Question)
		byText[t] = append(byText[t], e.FAQID)
	}
	var m Metrics
	var r1, r5, mrr float64
	for _, q := range queries {
		if err := ctx.Err(); err != nil {
			return Metrics{}, err
		}
		self := byText[strings.TrimSpace(q.Question)]
		excluded := make(map[string]bool, len(self))
		for _, id := range self {
			excluded[id] = true
		}
		want := make(map[string]bool, len(q.FAQIDs))
		for _, id := range q.FAQIDs {
			if !excluded[id] {
				want[id] = true
			}
		}
		if len(want) == 0 {
			m.Skipped++
			continue
		}
		ids, err := rank(ctx, q.Question, depth+len(excluded))
		if err != nil {
			return Metrics{}, fmt.Errorf("retrieval: eval: query %q: %w", q.Question, err)
		}
		m.Queries++
		pos := 0 // 1-based rank among distinct, non-excluded ids
		seen := make(map[string]bool, len(ids))
		for _, id := range ids {
			if excluded[id] || seen[id] {
				continue
			}
			seen[id] = true
			pos++
			if pos > depth {
				break
			}
			if want[id] {
				if pos == 1 {
					r1++
				}
				if pos <= 5 {
					r5++
				}
				mrr += 1 / float64(pos)
				break
			}
		}
	}
	if m.Queries > 0 {
		n := float64(m.Queries)
		m.RecallAt1, m.RecallAt5, m.MRRAt10 = r1/n, r5/n, mrr/n
	}
	return m, nil
}
