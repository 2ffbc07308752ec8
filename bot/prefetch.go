package bot

import (
	"context"

	"github.com/tandem-chat/tandem/handoff"
	"github.com/tandem-chat/tandem/internal/pii"
	"github.com/tandem-chat/tandem/retrieval"
)

// prefetch is a turn's search, started while the customer's message is
// being stored (Bot.Prepare).
type prefetch struct {
	text   string // the redacted question it searches for
	cancel context.CancelFunc
	done   chan struct{} // closed when hits and err are set
	hits   []retrieval.Hit
	err    error
}

// Release implements handoff.Prepared.
func (p *prefetch) Release() { p.cancel() }

// Prepare implements handoff.Preparer: with an LLM it starts the search
// for text's turn. The turn uses it if it still asks the same question
// (decide searches for the redacted message); a turn that needs no search
// (a request for a person, small talk) leaves it unused. In local mode it
// starts nothing: the turn is the search and a millisecond more, with no
// wait for the commit to hide behind, and in a burst the extra reads beside
// the inserts slowed the acknowledgements (loadgen burst: ack p99 0.5-0.7 s
// against 30 ms).
func (b *Bot) Prepare(ctx context.Context, text string) handoff.Prepared {
	if b.llm == nil {
		return nil
	}
	clean := pii.Redact(text)
	if clean == "" {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	p := &prefetch{text: clean, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		p.hits, p.err = b.search.Search(ctx, retrieval.SearchRequest{Text: p.text, K: answerHits})
	}()
	return p
}

// retrieve returns the hits for clean, the redacted question: pre's when it
// searched for the same text and succeeded, else a search of its own.
func (b *Bot) retrieve(ctx context.Context, clean string, pre *prefetch) ([]retrieval.Hit, error) {
	if pre != nil && pre.text == clean {
		select {
		case <-pre.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if pre.err == nil {
			return pre.hits, nil
		}
	}
	return b.search.Search(ctx, retrieval.SearchRequest{Text: clean, K: answerHits})
}
