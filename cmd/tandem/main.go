// Command tandem is the Tandem gateway: `tandem serve` runs it, and the other
// subcommands migrate, load knowledge, manage users and measure quality.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `tandem: an AI-first customer-support chat gateway.

Usage:
  tandem serve              run the gateway (migrates first)
  tandem migrate            apply database migrations
  tandem user create --email E --password P --role agent[,editor,admin] [--name N] [--team T]
  tandem ingest [--tags a,b] PATH...   load documents and folders into the knowledge base
  tandem reindex [--all]    re-embed chunks after a change of embedding model
  tandem eval retrieval --bank F --queries F   retrieval quality on a FAQ bank
  tandem eval intents --train F [--test F]     intent detection quality on labelled examples
  tandem intents import FILE.jsonl             add labelled examples {text, intent} to the intents
  tandem retention run [--dry-run] [--days N --mode delete|anonymise]
                            delete or anonymise old closed conversations now (the server does it daily)
  tandem demo-users         create the demo accounts (local databases only)
  tandem loadgen SCENARIO   measure a Tandem under load (sockets, messages, startup)
  tandem soak               run customers and agents through instance kills, socket drops and database restarts; check nothing was lost

Run "tandem COMMAND --help" for a command's flags and settings.
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = cmdServe(ctx, args[1:], stdout, stderr)
	case "migrate":
		err = cmdMigrate(ctx, args[1:], stdout, stderr)
	case "user":
		err = cmdUser(ctx, args[1:], stdout, stderr)
	case "ingest":
		err = cmdIngest(ctx, args[1:], stdout, stderr)
	case "reindex":
		err = cmdReindex(ctx, args[1:], stdout, stderr)
	case "eval":
		err = cmdEval(ctx, args[1:], stdout, stderr)
	case "intents":
		err = cmdIntents(ctx, args[1:], stdout, stderr)
	case "retention":
		err = cmdRetention(ctx, args[1:], stdout, stderr)
	case "demo-users":
		err = cmdDemoUsers(ctx, args[1:], stdout, stderr)
	case "loadgen":
		err = cmdLoadgen(ctx, args[1:], stdout, stderr)
	case "soak":
		err = cmdSoak(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "tandem: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if err == errHelp {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "tandem %s: %v\n", args[0], err)
		return 1
	}
	return 0
}
