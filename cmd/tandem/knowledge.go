package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tandem-chat/tandem/internal/config"
	"github.com/tandem-chat/tandem/internal/errs"
	"github.com/tandem-chat/tandem/knowledge"
	"github.com/tandem-chat/tandem/retrieval"
)

// newEmbedder picks the embedder the configuration asks for: the remote
// model when EMBEDDING_MODEL and LLM_BASE_URL are set, else the local one.
func newEmbedder(cfg *config.Config) retrieval.Embedder {
	if cfg.EmbeddingModel != "" && cfg.LLMBaseURL != "" {
		return newRemoteEmbedder(cfg)
	}
	return retrieval.NewLocal()
}

// newKnowledge wires the index and the knowledge service over pool and makes
// sure the vector index matches the embedder. Chunks embedded by another
// model are re-embedded first, since vectors of two models cannot be
// compared.
func newKnowledge(ctx context.Context, cfg *config.Config, pool *pgxpool.Pool, log func(msg string, args ...any)) (*retrieval.Index, *knowledge.Service, error) {
	ix := retrieval.NewIndex(pool, newEmbedder(cfg))
	if ix.Embedder().Dim() == 0 {
		// A remote model tells its dimension with its first vector.
		if _, err := ix.Embedder().Embed(ctx, []string{"dimension probe"}); err != nil {
			log("embedding model unreachable at start; search answers 503 until it is back", "model", ix.Embedder().Name(), "error", err)
			return ix, knowledge.NewService(pool, ix), nil
		}
	}
	stale, err := ix.StaleChunks(ctx)
	if err != nil {
		return nil, nil, err
	}
	if stale > 0 {
		log("re-embedding chunks made by another embedding model", "chunks", stale, "model", ix.Embedder().Name())
		if _, err := ix.Reindex(ctx, false, nil); err != nil {
			return nil, nil, fmt.Errorf("reindex: %w", err)
		}
	}
	if err := ix.EnsureIndex(ctx); err != nil {
		return nil, nil, err
	}
	return ix, knowledge.NewService(pool, ix), nil
}

func cmdIngest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ingest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	tags := fs.String("tags", "", "comma-separated tags for every document")
	quiet := fs.Bool("quiet", false, "print only the summary")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: tandem ingest [--tags a,b] PATH...\n\nLoads files and folders into the knowledge base. A file already loaded\n(same file name) gets a new version when its content changed.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errors.New("name at least one file or folder")
	}
	files, err := collectFiles(fs.Args())
	if err != nil {
		return err
	}
	cfg, pool, err := openStores(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	_, svc, err := newKnowledge(ctx, cfg, pool, func(msg string, a ...any) { fmt.Fprintln(stderr, msg, a) })
	if err != nil {
		return err
	}
	bar := newProgress(stderr, len(files), *quiet)
	start := time.Now()
	var docs, chunks, unchanged, failed int
	for i, f := range files {
		path := f.path
		bar.Show(i, filepath.Base(path))
		data, err := os.ReadFile(path)
		if err != nil {
			bar.Println(fmt.Sprintf("  %s: %v", path, err))
			failed++
			continue
		}
		up := knowledge.Upload{Filename: path, Source: f.source, Data: data}
		if *tags != "" {
			up.Tags = strings.Split(*tags, ",")
		}
		var d *knowledge.Document
		changed := false
		prev, err := svc.BySourceName(ctx, f.source)
		if errs.Is(err, errs.NotFound) && f.source != filepath.Base(path) {
			// Loaded by an older tandem, which named documents by the
			// file's name alone: take that document over once.
			prev, err = svc.BySourceName(ctx, filepath.Base(path))
		}
		if err == nil {
			d, changed, err = svc.Replace(ctx, prev.ID, up)
			if err != nil {
				bar.Println(fmt.Sprintf("  %s: %s", path, errs.MessageOf(err)))
				failed++
				continue
			}
		} else if errs.Is(err, errs.NotFound) {
			d, changed, err = svc.Create(ctx, up)
			if err != nil {
				bar.Println(fmt.Sprintf("  %s: %s", path, errs.MessageOf(err)))
				failed++
				continue
			}
		} else {
			return err
		}
		if !changed {
			unchanged++
			continue
		}
		docs++
		chunks += d.Chunks
		if !*quiet {
			bar.Println(fmt.Sprintf("  %s: %q version %d, %d chunks", path, d.Title, d.Version, d.Chunks))
		}
	}
	bar.Done()
	fmt.Fprintf(stdout, "ingest: %d documents loaded (%d chunks), %d unchanged, %d failed, in %.1f s\n",
		docs, chunks, unchanged, failed, time.Since(start).Seconds())
	if failed > 0 {
		return fmt.Errorf("%d files failed", failed)
	}
	return nil
}

// ingestFile is a file to load and the source name that identifies its
// document between runs: its path relative to the folder named on the
// command line, or its name for a file named there.
type ingestFile struct{ path, source string }

// collectFiles expands folders into their supported files, sorted.
func collectFiles(paths []string) ([]ingestFile, error) {
	var out []ingestFile
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !info.IsDir() {
			out = append(out, ingestFile{p, filepath.Base(p)})
			continue
		}
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if strings.HasPrefix(d.Name(), ".") && path != p {
					return filepath.SkipDir
				}
				return nil
			}
			if _, err := knowledge.DetectFormat(d.Name(), "", nil); err == nil && !strings.EqualFold(d.Name(), "README.md") {
				rel, err := filepath.Rel(p, path)
				if err != nil {
					return err
				}
				out = append(out, ingestFile{path, filepath.ToSlash(rel)})
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].path < out[j].path })
	return out, nil
}

func cmdReindex(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("reindex", flag.ContinueOnError)
	fs.SetOutput(stderr)
	all := fs.Bool("all", false, "re-embed every chunk, not only those of another model")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return err
	}
	cfg, pool, err := openStores(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	ix := retrieval.NewIndex(pool, newEmbedder(cfg))
	start := time.Now()
	bar := newProgress(stderr, 0, false)
	n, err := ix.Reindex(ctx, *all, func(done, total int) { bar.total = total; bar.Show(done, "chunks") })
	bar.Done()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "reindex: %d chunks embedded with %s in %.1f s\n", n, ix.Embedder().Name(), time.Since(start).Seconds())
	return nil
}

// progress draws a one-line progress bar on a terminal and nothing
// elsewhere.
type progress struct {
	w     io.Writer
	total int
	tty   bool
}

func newProgress(w io.Writer, total int, quiet bool) *progress {
	tty := false
	if f, ok := w.(*os.File); ok && !quiet {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	return &progress{w: w, total: total, tty: tty}
}

func (p *progress) Show(done int, label string) {
	if !p.tty || p.total == 0 {
		return
	}
	const width = 30
	filled := done * width / p.total
	fmt.Fprintf(p.w, "\r[%s%s] %d/%d %-30.30s", strings.Repeat("#", filled), strings.Repeat(".", width-filled), done, p.total, label)
}

func (p *progress) Println(s string) {
	if p.tty {
		fmt.Fprint(p.w, "\r\033[K")
	}
	fmt.Fprintln(p.w, s)
}

func (p *progress) Done() {
	if p.tty {
		fmt.Fprint(p.w, "\r\033[K")
	}
}
