package loadgen

import (
	"crypto/sha256"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Result is one measured figure set, printed in the Go benchmark format so
// that scripts/benchdoc picks it up with the benchmarks:
// "BenchmarkLoad<Name> N value unit value unit ...".
type Result struct {
	Name    string
	N       int // operations measured (connections, messages, turns)
	Metrics []Metric
}

// Metric is one value with its unit.
type Metric struct {
	Value float64
	Unit  string
}

// Add appends a metric.
func (r *Result) Add(v float64, unit string) { r.Metrics = append(r.Metrics, Metric{v, unit}) }

// String renders the benchmark line.
func (r Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "BenchmarkLoad%s\t%d", r.Name, r.N)
	for _, m := range r.Metrics {
		fmt.Fprintf(&b, "\t%s %s", formatValue(m.Value), m.Unit)
	}
	return b.String()
}

func formatValue(v float64) string {
	switch {
	case v == math.Trunc(v) && math.Abs(v) < 1e12:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.1f", v)
	case math.Abs(v) >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

// Latencies collects durations and reports percentiles.
type Latencies []time.Duration

// Sorted returns a sorted copy.
func (l Latencies) Sorted() Latencies {
	s := slices.Clone(l)
	slices.Sort(s)
	return s
}

// P returns the p-th percentile (0-100) of sorted latencies in ms, by the
// nearest-rank method; 0 when empty.
func (l Latencies) P(p float64) float64 {
	if len(l) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(l)))) - 1
	return ms(l[max(0, min(i, len(l)-1))])
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// probeData is what CPUProbe hashes, probeInts what it sorts (a fixed
// pseudo-random sequence).
var (
	probeData = make([]byte, 8<<20)
	probeInts = func() []uint32 {
		s := make([]uint32, 1<<19)
		x := uint32(2463534242)
		for i := range s {
			x ^= x << 13
			x ^= x >> 17
			x ^= x << 5
			s[i] = x
		}
		return s
	}()
)

// CPUProbe times a fixed piece of work on one core, SHA-256 over 8 MB and
// a sort of half a million integers (branches and memory, as most of a
// server's work is), and returns the best of three in milliseconds. This
// virtual machine's host slows it down in spells that /proc does not show
// (no steal time, no IO wait; the load average and CPU pressure count the
// benchmark's own work), and the same code then costs up to a third more
// CPU: a probe before and after a scenario tells a run made in such a
// spell from a slower Tandem. Only the figure's change between runs
// matters, not its value.
func CPUProbe() float64 {
	best := time.Duration(math.MaxInt64)
	ints := make([]uint32, len(probeInts))
	for range 3 {
		copy(ints, probeInts)
		start := time.Now()
		sha256.Sum256(probeData)
		slices.Sort(ints)
		best = min(best, time.Since(start))
	}
	return float64(best.Microseconds()) / 1000
}

// DiskProbe times 20 synchronous 8 KB writes (a write and fdatasync each,
// as a commit's WAL flush is) to a file in the system's temporary folder
// (on this machine the disk PostgreSQL's data is on too) and returns the
// median and the slowest in milliseconds; -1 when the file cannot be
// written.
// Commits wait for these, so a spell of slow disk shows in every figure
// that waits for a commit while the CPU probe stays level.
func DiskProbe() (p50, worst float64) {
	f, err := os.CreateTemp("", "loadgen-disk-probe-")
	if err != nil {
		return -1, -1
	}
	defer os.Remove(f.Name())
	defer f.Close()
	page := make([]byte, 8<<10)
	var lat Latencies
	for i := range 20 {
		start := time.Now()
		if _, err := f.WriteAt(page, int64(i%4)*int64(len(page))); err != nil {
			return -1, -1
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			return -1, -1
		}
		lat = append(lat, time.Since(start))
	}
	lat = lat.Sorted()
	return lat.P(50), lat.P(100)
}

// LoadAvg returns the 1-minute load average, for the record beside each
// figure (the machine is shared).
func LoadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	var l float64
	fmt.Sscan(string(b), &l)
	return l
}

// logf writes a progress line.
func logf(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, "%s  "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
	}
}

// Runs gathers the results of repeated runs of one scenario: with one
// run, its results; with more, every run's (named …/run=k) and then, for
// each result, a row of each figure's median over the runs (…/median-of-n).
// On a shared machine a single run's tail can be two to five times
// another's; the median row is the steadier figure, and the runs beside
// it show the spread.
func Runs(runs [][]Result) []Result {
	switch len(runs) {
	case 0:
		return nil
	case 1:
		return runs[0]
	}
	var out []Result
	for k, rs := range runs {
		for _, r := range rs {
			r.Name = fmt.Sprintf("%s/run=%d", r.Name, k+1)
			out = append(out, r)
		}
	}
	for i, first := range runs[0] {
		med := Result{Name: fmt.Sprintf("%s/median-of-%d", first.Name, len(runs)), N: first.N}
		for j, m := range first.Metrics {
			var vs []float64
			for _, rs := range runs {
				if i < len(rs) && j < len(rs[i].Metrics) && rs[i].Metrics[j].Unit == m.Unit {
					vs = append(vs, rs[i].Metrics[j].Value)
				}
			}
			med.Add(median(vs), m.Unit)
		}
		out = append(out, med)
	}
	return out
}

// median of vs (the mean of the middle two for an even count).
func median(vs []float64) float64 {
	if len(vs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}
