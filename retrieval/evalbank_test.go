package retrieval

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
)

// sharedData is the public evaluation data, beside the checkout.
const sharedData = "../../shared/data"

func TestReadBankAndQueries(t *testing.T) {
	bank, err := ReadBank(strings.NewReader(`{"faq_id": 0, "question": "借不到", "cluster": "x"}

{"faq_id": "a-7", "question": "How do I reset my password?"}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []BankEntry{{"0", "借不到"}, {"a-7", "How do I reset my password?"}}
	if !reflect.DeepEqual(bank, want) {
		t.Errorf("bank = %#v, want %#v", bank, want)
	}
	qs, err := ReadQueries(strings.NewReader(`{"question": "借不到钱", "faq_ids": [0, 3]}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(qs) != 1 || qs[0].Question != "借不到钱" || !reflect.DeepEqual(qs[0].FAQIDs, []string{"0", "3"}) {
		t.Errorf("queries = %#v", qs)
	}

	t.Run("ErrLine", func(t *testing.T) {
		_, err := ReadBank(strings.NewReader("{\"faq_id\": 1, \"question\": \"a\"}\n{oops}\n"))
		if err == nil || !strings.Contains(err.Error(), "line 2") {
			t.Errorf("err = %v, want one naming line 2", err)
		}
	})
	t.Run("ErrMissingID", func(t *testing.T) {
		if _, err := ReadBank(strings.NewReader(`{"question": "a"}`)); err == nil {
			t.Error("want an error for a missing faq_id")
		}
	})
	t.Run("ErrBadID", func(t *testing.T) {
		if _, err := ReadQueries(strings.NewReader(`{"question": "a", "faq_ids": [true]}`)); err == nil {
			t.Error("want an error for a boolean faq id")
		}
	})
}

func TestEvalRanking(t *testing.T) {
	bank := []BankEntry{{"1", "a"}, {"2", "b"}, {"3", "c"}, {"4", "same"}}
	queries := []Query{
		{Question: "q1", FAQIDs: []string{"1"}},      // first
		{Question: "q2", FAQIDs: []string{"2", "9"}}, // third, after a duplicate
		{Question: "same", FAQIDs: []string{"3"}},    // its own text (4) is dropped: first
		{Question: "q4", FAQIDs: []string{"8"}},      // absent
		{Question: "same", FAQIDs: []string{"4"}},    // only answer is itself: skipped
	}
	results := map[string][]string{
		"q1":   {"1", "2"},
		"q2":   {"3", "3", "1", "2"},
		"same": {"4", "3"},
		"q4":   {"1"},
	}
	var gotK []int
	rank := func(_ context.Context, q string, k int) ([]string, error) {
		gotK = append(gotK, k)
		return results[q], nil
	}
	m, err := EvalRanking(context.Background(), bank, queries, rank)
	if err != nil {
		t.Fatal(err)
	}
	want := Metrics{Queries: 4, Skipped: 1, RecallAt1: 2.0 / 4, RecallAt5: 3.0 / 4, MRRAt10: (1 + 1.0/3 + 1) / 4}
	if math.Abs(m.MRRAt10-want.MRRAt10) > 1e-12 {
		t.Errorf("MRR@10 = %v, want %v", m.MRRAt10, want.MRRAt10)
	}
	m.MRRAt10 = want.MRRAt10
	if m != want {
		t.Errorf("metrics = %+v, want %+v", m, want)
	}
	if !reflect.DeepEqual(gotK, []int{10, 10, 11, 10}) {
		t.Errorf("k asked = %v, want one more for each excluded entry", gotK)
	}
}

// loadBQ returns the BQ FAQ bank and queries, or skips the test.
func loadBQ(t testing.TB) ([]BankEntry, []Query) {
	t.Helper()
	dir := filepath.Join(sharedData, "bq")
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("no BQ data: %v", err)
	}
	bank, err := LoadBank(filepath.Join(dir, "dev_faq_bank.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	qs, err := LoadQueries(filepath.Join(dir, "dev_queries.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	return bank, qs
}

// loadIntentProxy turns an intent dataset ({text, intent}) into an FAQ
// check: the bank split's texts are the FAQ questions (faq_id = intent) and
// the query split's texts are the queries. Out-of-scope examples are left
// out, since no FAQ answers them.
func loadIntentProxy(t testing.TB, name, bankSplit, querySplit string) ([]BankEntry, []Query) {
	t.Helper()
	read := func(split string) []struct {
		Text   string `json:"text"`
		Intent string `json:"intent"`
		IsOOS  bool   `json:"is_oos"`
	} {
		path := filepath.Join(sharedData, name, split+".jsonl")
		f, err := os.Open(path)
		if err != nil {
			t.Skipf("no %s data: %v", name, err)
		}
		defer f.Close()
		var recs []struct {
			Text   string `json:"text"`
			Intent string `json:"intent"`
			IsOOS  bool   `json:"is_oos"`
		}
		dec := json.NewDecoder(f)
		for dec.More() {
			var r struct {
				Text   string `json:"text"`
				Intent string `json:"intent"`
				IsOOS  bool   `json:"is_oos"`
			}
			if err := dec.Decode(&r); err != nil {
				t.Fatal(err)
			}
			if !r.IsOOS && r.Intent != "oos" {
				recs = append(recs, r)
			}
		}
		return recs
	}
	var bank []BankEntry
	for _, r := range read(bankSplit) {
		bank = append(bank, BankEntry{FAQID: r.Intent, Question: r.Text})
	}
	var qs []Query
	for _, r := range read(querySplit) {
		qs = append(qs, Query{Question: r.Text, FAQIDs: []string{r.Intent}})
	}
	return bank, qs
}

// ranking is a precomputed ranker for EvalRanking: every query's bank
// indexes, best first, computed in parallel.
type ranking struct {
	bank []BankEntry
	top  map[string][]int
}

func (r *ranking) rank(_ context.Context, q string, k int) ([]string, error) {
	var ids []string
	for _, i := range r.top[q] {
		if len(ids) == k {
			break
		}
		ids = append(ids, r.bank[i].FAQID)
	}
	return ids, nil
}

// rankAll scores every bank entry for every distinct query text with score
// (which must be safe for concurrent use) and keeps the best depth.
func rankAll(bank []BankEntry, queries []Query, depth int, score func(q string, into []float64)) *ranking {
	r := &ranking{bank: bank, top: make(map[string][]int)}
	var texts []string
	for _, q := range queries {
		if _, ok := r.top[q.Question]; !ok {
			r.top[q.Question] = nil
			texts = append(texts, q.Question)
		}
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	next := make(chan string)
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			scores := make([]float64, len(bank))
			for q := range next {
				clear(scores)
				score(q, scores)
				top := topK(scores, depth)
				mu.Lock()
				r.top[q] = top
				mu.Unlock()
			}
		})
	}
	for _, q := range texts {
		next <- q
	}
	close(next)
	wg.Wait()
	return r
}

// topK returns the indexes of the k highest scores, best first; ties go to
// the lower index so results are deterministic.
func topK(scores []float64, k int) []int {
	idx := make([]int, 0, k+1)
	for i, s := range scores {
		if len(idx) == k && s <= scores[idx[k-1]] {
			continue
		}
		j := len(idx)
		idx = append(idx, i)
		for j > 0 && scores[idx[j-1]] < s {
			idx[j] = idx[j-1]
			j--
		}
		idx[j] = i
		if len(idx) > k {
			idx = idx[:k]
		}
	}
	return idx
}

// vectorScorer scores by cosine over e's vectors (brute force).
func vectorScorer(t testing.TB, e Embedder, bank []BankEntry) func(string, []float64) {
	t.Helper()
	texts := make([]string, len(bank))
	for i, b := range bank {
		texts[i] = b.Question
	}
	vecs, err := e.Embed(context.Background(), texts)
	if err != nil {
		t.Fatal(err)
	}
	return func(q string, into []float64) {
		qv, err := e.Embed(context.Background(), []string{q})
		if err != nil {
			panic(err)
		}
		for i, v := range vecs {
			var dot float32
			for j, x := range qv[0] {
				dot += x * v[j]
			}
			into[i] = float64(dot)
		}
	}
}

// bm25 is Okapi BM25 over Analyze tokens, a stand-in for the database's
// full-text side.
type bm25 struct {
	docs  []map[string]int
	lens  []float64
	avg   float64
	idf   map[string]float64
	k1, b float64
}

func newBM25(bank []BankEntry) *bm25 {
	m := &bm25{idf: make(map[string]float64), k1: 1.2, b: 0.75}
	df := make(map[string]int)
	for _, e := range bank {
		tf := make(map[string]int)
		toks := strings.Fields(Analyze(e.Question))
		for _, tok := range toks {
			tf[tok]++
		}
		for tok := range tf {
			df[tok]++
		}
		m.docs = append(m.docs, tf)
		m.lens = append(m.lens, float64(len(toks)))
		m.avg += float64(len(toks))
	}
	n := float64(len(bank))
	m.avg /= n
	for tok, d := range df {
		m.idf[tok] = math.Log(1 + (n-float64(d)+0.5)/(float64(d)+0.5))
	}
	return m
}

func (m *bm25) score(q string, into []float64) {
	toks := strings.Fields(Analyze(q))
	slices.Sort(toks)
	toks = slices.Compact(toks)
	for i, tf := range m.docs {
		var s float64
		norm := m.k1 * (1 - m.b + m.b*m.lens[i]/m.avg)
		for _, tok := range toks {
			if f := tf[tok]; f > 0 {
				s += m.idf[tok] * float64(f) * (m.k1 + 1) / (float64(f) + norm)
			}
		}
		into[i] = s
	}
}

// rrf fuses rankings by reciprocal rank: each list adds w/(c+rank).
func rrf(c float64, lists [][]int, weights []float64) []int {
	score := make(map[int]float64)
	for li, l := range lists {
		for r, i := range l {
			score[i] += weights[li] / (c + float64(r+1))
		}
	}
	ids := make([]int, 0, len(score))
	for i := range score {
		ids = append(ids, i)
	}
	slices.SortFunc(ids, func(a, b int) int {
		if score[a] != score[b] {
			if score[a] > score[b] {
				return -1
			}
			return 1
		}
		return a - b
	})
	return ids
}

// fuse returns the RRF fusion of two precomputed rankings.
func fuse(a, b *ranking, c, wa, wb float64) *ranking {
	r := &ranking{bank: a.bank, top: make(map[string][]int, len(a.top))}
	for q, ta := range a.top {
		r.top[q] = rrf(c, [][]int{ta, b.top[q]}, []float64{wa, wb})
	}
	return r
}

func evalRanking(t testing.TB, bank []BankEntry, qs []Query, r *ranking) Metrics {
	t.Helper()
	m, err := EvalRanking(context.Background(), bank, qs, r.rank)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
