package retrieval

import (
	"strings"
	"testing"
)

// coverageTexts: a question and passages that hold all, some or none of
// its terms, in English and Chinese; want -1 checks against the reference
// only.
var coverageTexts = []struct {
	query, text string
	want        float64
}{
	{"How much does shipping cost?", "Shipping costs $5; how much you pay does not depend on weight.", 1},
	{"How much does shipping cost?", "Shipping is free over $50.", 0.2}, // ship of how, much, doe, ship, cost
	{"How much does shipping cost?", "Returns are accepted within 30 days.", 0},
	{"退货运费谁出", "退货的运费由我们承担。", -1}, // bigrams: the reference only
	{"", "anything", 0},
}

func TestCoverage(t *testing.T) {
	for _, c := range coverageTexts {
		q := tokenSet(c.query)
		got := coverage(q, c.text)
		// The reference: the share of the query's distinct tokens that are
		// among the text's tokens.
		want := 0.0
		if len(q) > 0 {
			all := tokenSet(c.text)
			n := 0
			for tok := range q {
				if all[tok] {
					n++
				}
			}
			want = float64(n) / float64(len(q))
		}
		if got != want {
			t.Errorf("coverage(%q, %q) = %v, the text's token set gives %v", c.query, c.text, got, want)
		}
		if c.want >= 0 && got != c.want {
			t.Errorf("coverage(%q, %q) = %v, want %v", c.query, c.text, got, c.want)
		}
	}
}

// BenchmarkCoverage scores a question against a passage, as every search
// does for each hit.
func BenchmarkCoverage(b *testing.B) {
	q := tokenSet("How long does delivery take to Germany with express shipping?")
	text := strings.Repeat("Orders ship from our warehouse within one business day. Standard delivery takes 3 to 5 business days in the EU; express delivery takes 1 to 2. ", 4)
	b.ReportAllocs()
	for b.Loop() {
		coverage(q, text)
	}
}
