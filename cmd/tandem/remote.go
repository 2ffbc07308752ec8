package main

import (
	"github.com/tandem-chat/tandem/internal/config"
	"github.com/tandem-chat/tandem/retrieval"
)

// newRemoteEmbedder is the OpenAI-compatible embedder.
func newRemoteEmbedder(cfg *config.Config) retrieval.Embedder {
	return retrieval.NewLocal() // replaced when the OpenAI embedder lands
}
