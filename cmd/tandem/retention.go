package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/tandem-chat/tandem/handoff"
)

// cmdRetention is `tandem retention run`: apply the retention setting now
// (the server also runs it daily), or with --days and --mode instead of
// the stored setting; --dry-run only counts.
func cmdRetention(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "run" {
		return errors.New("usage: tandem retention run [--dry-run] [--days N --mode delete|anonymise]")
	}
	fs := flag.NewFlagSet("retention run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dry := fs.Bool("dry-run", false, "count what would go, change nothing")
	days := fs.Int("days", -1, "closed conversations older than this many days (default: the stored setting)")
	mode := fs.String("mode", "", "delete or anonymise (default: the stored setting)")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return err
	}
	_, pool, err := openStores(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	svc := handoff.NewService(pool, nil, handoff.Options{})
	r, _, err := svc.RetentionPolicy(ctx)
	if err != nil {
		return err
	}
	if *days >= 0 {
		r.Days = *days
	}
	if *mode != "" {
		r.Mode = *mode
	}
	if err := r.Validate(); err != nil {
		return err
	}
	if r.Days == 0 {
		fmt.Fprintln(stdout, "retention is off (0 days): nothing to do; set it with --days or PUT /api/v1/settings/retention")
		return nil
	}
	run, err := svc.RunRetention(ctx, r, time.Now(), *dry)
	if err != nil {
		return err
	}
	verb := map[bool]string{true: "would be", false: "were"}[*dry]
	fmt.Fprintf(stdout, "conversations closed before %s: %d %s deleted, %d %s anonymised\n",
		run.Cutoff.Format(time.RFC3339), run.Deleted, verb, run.Anonymised, verb)
	return nil
}
