package loadgen

import "testing"

// TestRuns: one run passes through; three are listed each and followed by
// a row of each figure's median.
func TestRuns(t *testing.T) {
	run := func(p50, p99 float64) []Result {
		r := Result{Name: "BotTurn/tandem/rate=200", N: 4000}
		r.Add(p50, "overhead-p50-ms")
		r.Add(p99, "overhead-p99-ms")
		return []Result{r}
	}
	if got := Runs([][]Result{run(3, 20)}); len(got) != 1 || got[0].Name != "BotTurn/tandem/rate=200" {
		t.Fatalf("one run: %v", got)
	}
	got := Runs([][]Result{run(3, 40), run(5, 20), run(4, 90)})
	if len(got) != 4 {
		t.Fatalf("got %d rows, want 3 runs and a median", len(got))
	}
	if got[1].Name != "BotTurn/tandem/rate=200/run=2" || got[1].Metrics[1].Value != 20 {
		t.Errorf("second run: %v", got[1])
	}
	med := got[3]
	if med.Name != "BotTurn/tandem/rate=200/median-of-3" {
		t.Errorf("median row named %q", med.Name)
	}
	if med.Metrics[0].Value != 4 || med.Metrics[1].Value != 40 {
		t.Errorf("medians %v, want 4 and 40 (each figure on its own)", med.Metrics)
	}
	if m := median([]float64{1, 9, 3, 7}); m != 5 {
		t.Errorf("median of an even count = %v, want 5", m)
	}
}
