package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/tandem-chat/tandem/internal/loadgen"
)

const loadgenUsage = `Usage: tandem loadgen SCENARIO [flags]

Measures a running Tandem from outside, on loopback: it starts this binary
as the server (one or two instances) on a throwaway database on the
PostgreSQL server given by --database, drives it, and prints the figures,
one "BenchmarkLoad..." line each (make bench collects them).

Scenarios:
  sockets    memory per idle customer WebSocket (--counts, --peer, --centrifugo, --instances)
  messages   customer messages to an agent on another instance at fixed rates (--rates)
  burst      new conversations and their messages at fixed rates (--new, --msgs, --for)
  bot        bot turns against a fake LLM: what Tandem adds to its time (--rate)
  startup    time to ready, and the binary's size

Run "tandem loadgen SCENARIO --help" for its flags.
`

func cmdLoadgen(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, loadgenUsage)
		return errHelp
	}
	scenario := args[0]
	if scenario == loadgen.HolderCommand {
		// Not for people: the client end of the sockets scenario, which
		// runs this binary as its child processes.
		return loadgen.HoldSockets(ctx, os.Stdin, stdout)
	}
	fs := flag.NewFlagSet("loadgen "+scenario, flag.ContinueOnError)
	fs.SetOutput(stderr)
	exe, _ := os.Executable()
	cfg := loadgen.Config{Log: stderr}
	fs.StringVar(&cfg.Database, "database", loadgen.DefaultDatabase(), "PostgreSQL server to make throwaway databases on (default: TANDEM_TEST_DATABASE_URL, DATABASE_URL or the local cluster)")
	fs.StringVar(&cfg.Exe, "exe", exe, "the tandem binary to run as the server")
	fs.IntVar(&cfg.PortBase, "port-base", 19400, "first of ten ports to listen on (profilers on the port + 50)")
	fs.StringVar(&cfg.PProfDir, "pprof-dir", "", "write the servers' heap and CPU profiles into this folder")
	counts := fs.String("counts", "10000,19000", "sockets: connection counts to measure at")
	peer := fs.String("peer", "", "sockets: a peer server binary to measure the same way (scripts/wspeer)")
	centrifugo := fs.String("centrifugo", "", "sockets: a Centrifugo (v5) server binary to measure the same way, each socket a client subscribed to a channel (scripts/centrifugo builds one)")
	instances := fs.Int("instances", 1, "sockets: spread the sockets over this many server processes (Tandem instances on one database, as many peers), for more than one process may hold")
	settle := fs.Duration("settle", 5*time.Second, "sockets: wait after opening before reading memory")
	rates := fs.String("rates", "1000,3000", "messages: messages per second to measure at")
	convs := fs.Int("conversations", 1000, "messages: conversations (each with its customer socket)")
	agents := fs.Int("agents", 50, "messages: agents sharing the conversations")
	duration := fs.Duration("duration", 20*time.Second, "messages, bot: measured time (per rate)")
	rate := fs.Float64("rate", 200, "bot: turns per second")
	runs := fs.Int("runs", 1, "bot: runs, each with a server of its own; with more than one, a row of each figure's median follows")
	newConvs := fs.Float64("new", 100, "burst: new conversations per second")
	msgRate := fs.Float64("msgs", 500, "burst: customer messages per second")
	burstFor := fs.Duration("for", time.Minute, "burst: how long new conversations keep coming")
	window := fs.Duration("window", 10*time.Second, "burst: figures per window of this length")
	burstLLM := fs.Bool("llm", false, "burst: the bot answers through a fake LLM (60 ms, then 20 tokens 10 ms apart) instead of in local mode")
	examples := fs.String("examples", "examples", "burst, bot: the knowledge to load first")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return err
	}
	if cfg.Database == "" {
		return errors.New("no PostgreSQL server: pass --database or set TANDEM_TEST_DATABASE_URL")
	}
	var results []loadgen.Result
	var err error
	probe := loadgen.Result{Name: "Probe/" + scenario, N: 3}
	probeNow := func(when string) {
		probe.Add(loadgen.CPUProbe(), "cpu-"+when+"-ms")
		p50, worst := loadgen.DiskProbe()
		probe.Add(p50, "fsync-p50-"+when+"-ms")
		probe.Add(worst, "fsync-max-"+when+"-ms")
	}
	probeNow("before")
	switch scenario {
	case "sockets":
		var ns []int
		if ns, err = intList(*counts); err == nil {
			results, err = cfg.Sockets(ctx, loadgen.SocketsOptions{Counts: ns, Peer: *peer, Centrifugo: *centrifugo, Settle: *settle, Instances: *instances})
		}
	case "messages":
		var rs []int
		if rs, err = intList(*rates); err == nil {
			results, err = cfg.Messages(ctx, loadgen.MessagesOptions{Rates: rs, Conversations: *convs, Agents: *agents, Duration: *duration})
		}
	case "burst":
		results, err = cfg.Burst(ctx, loadgen.BurstOptions{NewPerSecond: *newConvs, MessagesPerSecond: *msgRate, Duration: *burstFor, Window: *window, Examples: *examples, LLM: *burstLLM})
	case "bot":
		var all [][]loadgen.Result
		for k := 1; k <= *runs && err == nil; k++ {
			var rs []loadgen.Result
			if rs, err = cfg.BotTurns(ctx, loadgen.BotOptions{Rate: *rate, Duration: *duration, Examples: *examples}); err == nil {
				all = append(all, rs)
			}
		}
		results = loadgen.Runs(all)
	case "startup":
		results, err = cfg.Startup(ctx)
	default:
		fmt.Fprintf(stderr, "tandem loadgen: unknown scenario %q\n\n%s", scenario, loadgenUsage)
		return errHelp
	}
	// The same fixed work before and after the scenario: a run made while
	// the host slowed this machine's CPU or disk down shows here
	// (loadgen.CPUProbe, loadgen.DiskProbe).
	probeNow("after")
	for _, r := range append(results, probe) {
		fmt.Fprintln(stdout, r)
	}
	return err
}

func intList(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%q is not a list of positive numbers", s)
		}
		out = append(out, n)
	}
	return out, nil
}
