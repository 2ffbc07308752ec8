package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/tandem-chat/tandem/bot"
)

// cmdEvalIntents trains the local intent classifier on one JSONL file of
// labelled examples and measures it on another (or by 5-fold
// cross-validation of the training file when --test is left out). It needs
// no database.
func cmdEvalIntents(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("eval intents", flag.ContinueOnError)
	fs.SetOutput(stderr)
	trainPath := fs.String("train", "", "JSONL training examples: {text, intent[, is_oos]}")
	testPath := fs.String("test", "", "JSONL test examples; empty: 5-fold cross-validation of --train")
	threshold := fs.Float64("threshold", 0, "confidence threshold below which the intent is none (0: the classifier's default)")
	seed := fs.Uint64("seed", 1, "seed of training and of the cross-validation folds")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: tandem eval intents --train FILE [--test FILE] [--threshold T]\n\nPrints accuracy, out-of-scope precision and recall, and the answered-versus-correct\ncurve over thresholds. Out-of-scope examples have intent \"oos\" (or NO_NODES_DETECTED,\nor \"is_oos\": true); the classifier is right on them when it answers none.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return err
	}
	if *trainPath == "" {
		fs.Usage()
		return errors.New("--train is required")
	}
	if *threshold < 0 || *threshold > 1 {
		return errors.New("--threshold must be between 0 and 1")
	}
	train, err := readExamplesFile(*trainPath)
	if err != nil {
		return err
	}
	var test []bot.Example
	if *testPath != "" {
		if test, err = readExamplesFile(*testPath); err != nil {
			return err
		}
		if len(test) == 0 {
			return fmt.Errorf("%s: no examples", *testPath)
		}
	}
	start := time.Now()
	rep := bot.EvalIntents(train, test, bot.ClassifierOptions{Threshold: *threshold, Seed: *seed})
	if rep.N == 0 {
		return fmt.Errorf("%s: no examples to evaluate (training failed or the file is empty)", *trainPath)
	}
	split := "test " + *testPath
	if *testPath == "" {
		split = "5-fold cross-validation"
	}
	fmt.Fprintf(stdout, "train %s: %d examples; %s; %.1f s\n", *trainPath, len(train), split, time.Since(start).Seconds())
	rep.Format(stdout)
	return nil
}

func readExamplesFile(path string) ([]bot.Example, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ex, err := bot.LoadExamplesJSONL(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return ex, nil
}
