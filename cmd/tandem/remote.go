package main

import (
	"github.com/tandem-chat/tandem/internal/config"
	"github.com/tandem-chat/tandem/retrieval"
)

// newRemoteEmbedder is the OpenAI-compatible embedder named by
// EMBEDDING_MODEL on LLM_BASE_URL.
func newRemoteEmbedder(cfg *config.Config) retrieval.Embedder {
	return retrieval.NewOpenAI(retrieval.OpenAIConfig{
		BaseURL: cfg.LLMBaseURL, APIKey: cfg.LLMAPIKey, Model: cfg.EmbeddingModel, Timeout: cfg.LLMTimeout,
	})
}
