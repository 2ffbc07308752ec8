package main

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tandem-chat/tandem/handoff"
	"github.com/tandem-chat/tandem/internal/config"
)

// newBlobStore returns where attachments' bytes live: the database by
// default, or an S3-compatible object store.
func newBlobStore(ctx context.Context, cfg *config.Config, pool *pgxpool.Pool) (handoff.BlobStore, error) {
	return handoff.PostgresBlobs{Pool: pool}, nil
}
