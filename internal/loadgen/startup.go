package loadgen

import (
	"context"
	"os"
	"time"
)

// Startup measures the time from starting `tandem serve` to its first 200
// on /readyz: on a fresh database (every migration applied on the way),
// then three times on the migrated one, keeping the best and the worst;
// and the binary's size.
func (c *Config) Startup(ctx context.Context) ([]Result, error) {
	dbURL, drop, err := TempDatabase(ctx, c.Database)
	if err != nil {
		return nil, err
	}
	defer drop()
	var first time.Duration
	var later Latencies
	for i := range 4 {
		p, err := c.startTandem(ctx, "tandem", dbURL, c.addr(0))
		if err != nil {
			return nil, err
		}
		p.Stop()
		if i == 0 {
			first = p.Ready
		} else {
			later = append(later, p.Ready)
		}
	}
	later = later.Sorted()
	r := Result{Name: "Startup", N: len(later)}
	r.Add(later.P(0), "ready-ms")
	r.Add(later.P(100), "ready-worst-ms")
	r.Add(ms(first), "first-ready-ms")
	if st, err := os.Stat(c.Exe); err == nil {
		r.Add(float64(st.Size())/(1<<20), "binary-MB")
	}
	r.Add(LoadAvg(), "load")
	return []Result{r}, nil
}
