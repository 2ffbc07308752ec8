package main

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tandem-chat/tandem/handoff"
	"github.com/tandem-chat/tandem/internal/config"
	"github.com/tandem-chat/tandem/internal/s3store"
)

// newBlobStore returns where attachments' bytes live: the database by
// default, or an S3-compatible object store, whose bucket must be
// reachable at start.
func newBlobStore(ctx context.Context, cfg *config.Config, pool *pgxpool.Pool) (handoff.BlobStore, error) {
	if cfg.AttachmentStore != "s3" {
		return handoff.PostgresBlobs{Pool: pool}, nil
	}
	st, err := s3store.New(s3store.Config{Endpoint: cfg.S3Endpoint, Bucket: cfg.S3Bucket, Region: cfg.S3Region,
		AccessKeyID: cfg.S3AccessKeyID, SecretAccessKey: cfg.S3SecretAccessKey, Prefix: cfg.S3Prefix})
	if err != nil {
		return nil, err
	}
	if err := st.Check(ctx); err != nil {
		return nil, fmt.Errorf("TANDEM_ATTACHMENT_STORE=s3: %w", err)
	}
	return st, nil
}
