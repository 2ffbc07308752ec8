package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/tandem-chat/tandem/bot"
)

func cmdIntents(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "import" {
		return errors.New("usage: tandem intents import FILE.jsonl")
	}
	return cmdIntentsImport(ctx, args[1:], stdout, stderr)
}

// cmdIntentsImport adds labelled examples, JSONL records {text, intent}, to
// the intents they name (creating missing ones with action answer), as
// POST /api/v1/intents/import does. Running gateways retrain within their
// refresh interval.
func cmdIntentsImport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("intents import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: tandem intents import FILE.jsonl\n\nAdds labelled examples, one JSON object per line: {\"text\": \"...\", \"intent\": \"...\"}.\nIntents that do not exist are created with action answer; out-of-scope\nrecords (intent \"oos\", or \"is_oos\": true) are skipped.")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("name one JSONL file")
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		return err
	}
	defer f.Close()
	examples, err := bot.LoadExamplesJSONL(f)
	if err != nil {
		return fmt.Errorf("%s: %w", fs.Arg(0), err)
	}
	_, pool, err := openStores(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	store := bot.NewIntentStore(pool)
	if err := store.SeedBuiltins(ctx); err != nil {
		return err
	}
	n, err := store.Import(ctx, examples)
	if err != nil {
		return err
	}
	intents := map[string]bool{}
	for _, e := range examples {
		if e.Intent != bot.IntentOOS {
			intents[e.Intent] = true
		}
	}
	fmt.Fprintf(stdout, "intents import: %d records read, %d new examples across %d intents\n", len(examples), n, len(intents))
	return nil
}
