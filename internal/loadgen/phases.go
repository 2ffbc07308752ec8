package loadgen

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"sort"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// botPhases are the phases of a bot turn that are Tandem's own, of those
// the server times (tandem_bot_turn_phase_seconds), in the turn's order;
// the LLM's phases are the fake's fixed time, and their buckets are too
// coarse for it.
var botPhases = []string{"message", "context", "search", "reply"}

// histogram is a Prometheus histogram's cumulative bucket counts.
type histogram struct {
	bounds []float64 // upper bounds, ascending, the last +Inf
	counts []uint64  // cumulative
}

// scrapePhases reads the server's bot turn phase histograms.
func scrapePhases(ctx context.Context, baseURL string) (map[string]histogram, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("metrics: %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	out := map[string]histogram{}
	fam := families["tandem_bot_turn_phase_seconds"]
	if fam == nil {
		return out, nil
	}
	for _, m := range fam.GetMetric() {
		phase := ""
		for _, l := range m.GetLabel() {
			if l.GetName() == "phase" {
				phase = l.GetValue()
			}
		}
		out[phase] = histogramOf(m.GetHistogram())
	}
	return out, nil
}

func histogramOf(h *dto.Histogram) histogram {
	var out histogram
	for _, b := range h.GetBucket() {
		out.bounds = append(out.bounds, b.GetUpperBound())
		out.counts = append(out.counts, b.GetCumulativeCount())
	}
	if len(out.bounds) == 0 || !math.IsInf(out.bounds[len(out.bounds)-1], 1) {
		out.bounds = append(out.bounds, math.Inf(1))
		out.counts = append(out.counts, h.GetSampleCount())
	}
	return out
}

// since is what h observed after h0 (the same histogram read earlier).
func (h histogram) since(h0 histogram) histogram {
	out := histogram{bounds: h.bounds, counts: make([]uint64, len(h.counts))}
	for i := range h.counts {
		out.counts[i] = h.counts[i]
		if i < len(h0.counts) {
			out.counts[i] -= h0.counts[i]
		}
	}
	return out
}

// quantile estimates the q-quantile in seconds as PromQL's
// histogram_quantile does: linearly within the bucket it falls in (the
// estimate is as coarse as the buckets). NaN when empty; the highest
// finite bound when it falls in the +Inf bucket.
func (h histogram) quantile(q float64) float64 {
	n := len(h.counts)
	if n == 0 || h.counts[n-1] == 0 {
		return math.NaN()
	}
	rank := q * float64(h.counts[n-1])
	i := sort.Search(n, func(i int) bool { return float64(h.counts[i]) >= rank })
	if i == n-1 {
		if n >= 2 {
			return h.bounds[n-2]
		}
		return math.NaN()
	}
	lower, below := 0.0, uint64(0)
	if i > 0 {
		lower, below = h.bounds[i-1], h.counts[i-1]
	}
	inBucket := h.counts[i] - below
	if inBucket == 0 {
		return h.bounds[i]
	}
	return lower + (h.bounds[i]-lower)*(rank-float64(below))/float64(inBucket)
}
