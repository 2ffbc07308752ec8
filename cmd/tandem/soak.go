package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime/debug"
	"strings"
	"time"

	"github.com/tandem-chat/tandem/internal/loadgen"
	"github.com/tandem-chat/tandem/internal/soak"
)

const soakUsage = `Usage: tandem soak [flags]

Runs many customers and agents against gateway instances of this binary
on loopback, over WebSocket and REST, while it kills and restarts the
instances (SIGKILL), drops sockets, and, with --private-db, restarts
PostgreSQL; then checks that every acknowledged message is in its
transcript exactly once and reached every socket exactly once, and that
no customer of the bot is left without an answer. It exits 1 if not.

The database is a throwaway one on --database (the local cluster by
default), or, with --private-db, a private PostgreSQL cluster of its own,
the only kind it restarts.

Flags:
`

func cmdSoak(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, soakUsage)
		fs.PrintDefaults()
	}
	exe, _ := os.Executable()
	var o soak.Options
	fs.StringVar(&o.Exe, "exe", exe, "the tandem binary to run as the gateway")
	fs.StringVar(&o.Database, "database", loadgen.DefaultDatabase(), "PostgreSQL server for a throwaway database (default: TANDEM_TEST_DATABASE_URL, DATABASE_URL or the local cluster)")
	fs.BoolVar(&o.PrivateDB, "private-db", false, "run a private PostgreSQL cluster, and restart it as a fault")
	fs.IntVar(&o.Instances, "instances", 2, "gateway instances")
	fs.IntVar(&o.PortBase, "port-base", 19310, "instance i listens on 127.0.0.1:port-base+i")
	fs.IntVar(&o.Customers, "customers", 60, "customers, each with a conversation and a socket")
	fs.IntVar(&o.Agents, "agents", 5, "agents; every fourth conversation is taken over by one")
	fs.DurationVar(&o.Duration, "duration", 3*time.Minute, "how long traffic and faults run")
	fs.DurationVar(&o.Think, "think", time.Second, "mean pause between one client's messages")
	fs.DurationVar(&o.KillEvery, "kill-every", 30*time.Second, "SIGKILL an instance and restart it this often (0: never)")
	fs.DurationVar(&o.DropEvery, "drop-every", 2*time.Second, "drop a random socket this often (0: never)")
	fs.DurationVar(&o.DBRestartEvery, "db-restart-every", 45*time.Second, "with --private-db, restart PostgreSQL this often (0: never)")
	doc := fs.String("doc", "", "write the figures into the soak block of this Markdown file (docs/benchmarks.md)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return err
	}
	o.Log = stderr
	rep, err := soak.Run(ctx, o)
	if err != nil {
		return err
	}
	fmt.Fprint(stdout, soakText(rep, o))
	if *doc != "" {
		if err := writeSoakDoc(*doc, soakMarkdown(rep, o)); err != nil {
			return err
		}
	}
	if !rep.OK() {
		return fmt.Errorf("lost %d, duplicated %d, socket events missing %d, duplicated %d, unanswered %d; %s",
			rep.Lost, rep.Duplicates, rep.SocketMissing, rep.SocketDuplicates, rep.Unanswered, strings.Join(rep.Problems, "; "))
	}
	return nil
}

// commit is the revision the binary was built from, as go build records it.
func commit() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	rev, dirty := "unknown", false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
			if len(rev) > 7 {
				rev = rev[:7]
			}
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "unknown" {
		// Built without VCS stamping (a git worktree, -buildvcs=false):
		// ask git, from the checkout the soak runs in.
		if out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
			rev = strings.TrimSpace(string(out))
			st, _ := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output()
			dirty = len(strings.TrimSpace(string(st))) > 0
		}
	}
	if dirty {
		rev += " (with local changes)"
	}
	return rev
}

func soakText(r *soak.Report, o soak.Options) string {
	var b strings.Builder
	fmt.Fprintf(&b, "soak: %s with %d instances, %d customers, %d agents (%d conversations)\n", r.Duration, r.Instances, r.Customers, r.Agents, r.Conversations)
	fmt.Fprintf(&b, "messages: %d sent, %d acknowledged, %d found, %d lost, %d duplicated, %d failed\n", r.Sent, r.Acked, r.Found, r.Lost, r.Duplicates, r.Failed)
	fmt.Fprintf(&b, "sockets: %d events received, %d missing, %d duplicated; %d reconnects\n", r.SocketEvents, r.SocketMissing, r.SocketDuplicates, r.Reconnects)
	fmt.Fprintf(&b, "bot conversations left without an answer: %d\n", r.Unanswered)
	fmt.Fprintf(&b, "faults: %d instance kills, %d socket drops, %d PostgreSQL restarts; clients retried after %d 503s and %d refused connections\n",
		r.Kills, r.Drops, r.DBRestarts, r.Unavailable, r.Refused)
	for i, p := range r.Problems {
		if i == 10 {
			fmt.Fprintf(&b, "  … %d more\n", len(r.Problems)-10)
			break
		}
		fmt.Fprintf(&b, "  problem: %s\n", p)
	}
	if r.OK() {
		b.WriteString("OK: every acknowledged message stored once and delivered once to every socket\n")
	}
	return b.String()
}

func soakMarkdown(r *soak.Report, o soak.Options) string {
	db := "a throwaway database on the local PostgreSQL"
	if o.PrivateDB {
		db = "a private PostgreSQL cluster (restarted as a fault)"
	}
	verdict := "**every acknowledged message was stored once and reached every socket once**"
	if !r.OK() {
		verdict = "**FAILED**: " + strings.Join(r.Problems[:min(len(r.Problems), 3)], "; ")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Last run: %s, commit %s, %s: %s.\n\n", r.Finished.UTC().Format("2006-01-02 15:04 UTC"), commit(),
		strings.TrimSuffix(fmt.Sprintf("%d instances on %s", r.Instances, db), "."), verdict)
	b.WriteString("| | |\n|---|---|\n")
	row := func(k string, v any) { fmt.Fprintf(&b, "| %s | %v |\n", k, v) }
	row("duration of traffic and faults", r.Duration)
	row("customers / agents / conversations", fmt.Sprintf("%d / %d / %d", r.Customers, r.Agents, r.Conversations))
	row("messages sent", r.Sent)
	row("acknowledged", r.Acked)
	row("found in the transcripts", r.Found)
	row("lost", r.Lost)
	row("duplicated", r.Duplicates)
	row("sends given up (a final error)", r.Failed)
	row("events received over WebSockets", r.SocketEvents)
	row("events a socket missed / got twice", fmt.Sprintf("%d / %d", r.SocketMissing, r.SocketDuplicates))
	row("bot conversations left without an answer", r.Unanswered)
	row("instance kills (SIGKILL, then restart)", r.Kills)
	row("socket drops", r.Drops)
	row("PostgreSQL restarts", r.DBRestarts)
	row("socket reconnects", r.Reconnects)
	row("answers 503 (retried)", r.Unavailable)
	row("connections refused or reset (retried)", r.Refused)
	return b.String()
}

// Markers around the soak figures in docs/benchmarks.md; the section's
// prose above them is written by hand.
const (
	soakBegin = "<!-- generated by make soak: begin -->"
	soakEnd   = "<!-- generated by make soak: end -->"
)

// writeSoakDoc replaces the text between the soak markers of path, or
// adds a Soak section with them at the end.
func writeSoakDoc(path, block string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	s := string(b)
	i, j := strings.Index(s, soakBegin), strings.Index(s, soakEnd)
	if i < 0 || j < i {
		s = strings.TrimRight(s, "\n") + "\n\n## Soak\n\n" + soakBegin + "\n" + block + soakEnd + "\n"
	} else {
		s = s[:i+len(soakBegin)] + "\n" + block + s[j:]
	}
	return os.WriteFile(path, []byte(s), 0o644)
}
