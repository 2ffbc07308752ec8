package loadgen

import (
	"math"
	"testing"

	dto "github.com/prometheus/client_model/go"
)

// TestHistogramQuantile: quantiles of the difference of two readings,
// interpolated within buckets as PromQL's histogram_quantile does.
func TestHistogramQuantile(t *testing.T) {
	bucket := func(le float64, n uint64) *dto.Bucket {
		return &dto.Bucket{UpperBound: &le, CumulativeCount: &n}
	}
	read := func(a, b, c, count uint64) histogram {
		return histogramOf(&dto.Histogram{SampleCount: &count,
			Bucket: []*dto.Bucket{bucket(0.001, a), bucket(0.002, b), bucket(0.005, c)}})
	}
	before := read(10, 10, 10, 10) // ten fast turns before the measurement
	// Then 100 turns: 50 at most 1 ms, 40 in (1, 2] ms, 8 in (2, 5] ms and
	// 2 slower than 5 ms.
	after := read(60, 100, 108, 110)
	h := after.since(before)
	for _, c := range []struct{ q, want float64 }{
		{0.25, 0.0005}, // rank 25 of the 50 in [0, 1 ms]
		{0.5, 0.001},   // rank 50: the top of the first bucket
		{0.7, 0.0015},  // rank 70: half way through the 40 in (1, 2]
		{0.94, 0.0035}, // rank 94: half way through the 8 in (2, 5]
		{0.99, 0.005},  // in the +Inf bucket: the highest finite bound
	} {
		if got := h.quantile(c.q); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("quantile(%v) = %v, want %v", c.q, got, c.want)
		}
	}
	if got := (histogram{}).quantile(0.5); !math.IsNaN(got) {
		t.Errorf("empty histogram: %v, want NaN", got)
	}
}
