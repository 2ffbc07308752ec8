// Package s3store keeps attachments' bytes in an S3-compatible object
// store (Amazon S3, MinIO, Ceph, Cloudflare R2, …) for deployments whose
// attachments outgrow the database. It implements handoff.BlobStore with
// minio-go, a small, maintained client that speaks the S3 API of every
// such store.
package s3store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/tandem-chat/tandem/handoff"
	"github.com/tandem-chat/tandem/internal/errs"
)

// Config says where the objects go.
type Config struct {
	// Endpoint is the store's URL: https://s3.eu-west-1.amazonaws.com,
	// http://127.0.0.1:9000. Its scheme decides TLS.
	Endpoint string
	Bucket   string // it must exist
	Region   string // "" lets the client ask the store
	// AccessKeyID and SecretAccessKey sign requests; both empty means
	// anonymous access.
	AccessKeyID, SecretAccessKey string
	// Prefix is put before every key, a "folder" in the bucket.
	Prefix string
	// Timeout bounds one operation; default 30s.
	Timeout time.Duration
}

// Store is an S3-compatible handoff.BlobStore.
type Store struct {
	client  *minio.Client
	bucket  string
	prefix  string
	timeout time.Duration
}

var _ handoff.BlobStore = (*Store)(nil)

// New returns a store for cfg; it does not contact the store (see Check).
func New(cfg Config) (*Store, error) {
	u, err := url.Parse(cfg.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("s3store: endpoint %q is not an http(s) URL", cfg.Endpoint)
	}
	if cfg.Bucket == "" {
		return nil, errors.New("s3store: no bucket")
	}
	var creds *credentials.Credentials
	if cfg.AccessKeyID != "" {
		creds = credentials.NewStaticV4(cfg.AccessKeyID, cfg.SecretAccessKey, "")
	} else {
		creds = credentials.New(&credentials.Static{}) // anonymous
	}
	c, err := minio.New(u.Host, &minio.Options{
		Creds:  creds,
		Secure: u.Scheme == "https",
		Region: cfg.Region,
		// Path-style URLs (endpoint/bucket/key) work with every store;
		// virtual-host style needs DNS for each bucket.
		BucketLookup: minio.BucketLookupPath,
	})
	if err != nil {
		return nil, fmt.Errorf("s3store: %w", err)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	return &Store{client: c, bucket: cfg.Bucket, prefix: cfg.Prefix, timeout: cfg.Timeout}, nil
}

// Check makes sure the bucket exists and the credentials reach it.
func (s *Store) Check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	ok, err := s.client.BucketExists(ctx, s.bucket)
	if err != nil {
		return fmt.Errorf("s3store: bucket %s: %w", s.bucket, err)
	}
	if !ok {
		return fmt.Errorf("s3store: bucket %s does not exist", s.bucket)
	}
	return nil
}

// Put implements handoff.BlobStore.
func (s *Store) Put(ctx context.Context, b handoff.Blob) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	_, err := s.client.PutObject(ctx, s.bucket, s.prefix+b.Key, bytes.NewReader(b.Data), int64(len(b.Data)),
		minio.PutObjectOptions{ContentType: b.Type, UserMetadata: map[string]string{"attachment-id": b.AttachmentID}})
	return translate(err, "put "+b.Key)
}

// Get implements handoff.BlobStore.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	obj, err := s.client.GetObject(ctx, s.bucket, s.prefix+key, minio.GetObjectOptions{})
	if err != nil {
		return nil, translate(err, "get "+key)
	}
	defer obj.Close()
	data, err := io.ReadAll(obj) // the first read makes the request
	if err != nil {
		return nil, translate(err, "get "+key)
	}
	return data, nil
}

// Delete implements handoff.BlobStore, with one multi-object request per
// thousand keys.
func (s *Store) Delete(ctx context.Context, keys ...string) error {
	if len(keys) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	objects := make(chan minio.ObjectInfo, len(keys))
	for _, k := range keys {
		objects <- minio.ObjectInfo{Key: s.prefix + k}
	}
	close(objects)
	for e := range s.client.RemoveObjects(ctx, s.bucket, objects, minio.RemoveObjectsOptions{}) {
		if e.Err != nil && minio.ToErrorResponse(e.Err).Code != "NoSuchKey" {
			return translate(e.Err, "delete "+e.ObjectName)
		}
	}
	return nil
}

// translate gives store errors our codes: a missing object is NotFound;
// an unreachable or failing store is Unavailable (callers log the cause).
func translate(err error, what string) error {
	if err == nil {
		return nil
	}
	resp := minio.ToErrorResponse(err)
	switch {
	case resp.Code == "NoSuchKey":
		return errs.Errorf(errs.NotFound, "attachment data not found")
	case resp.StatusCode >= 500, isNetErr(err), errors.Is(err, context.DeadlineExceeded):
		return &unavailable{errs.Errorf(errs.Unavailable, "the file store is unavailable; try again shortly"),
			fmt.Errorf("s3store: %s: %w", what, err)}
	}
	return fmt.Errorf("s3store: %s: %w", what, err)
}

func isNetErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || strings.Contains(err.Error(), "connection refused")
}

// unavailable keeps the coded error for callers and the cause for logs.
type unavailable struct {
	coded *errs.Error
	cause error
}

func (u *unavailable) Error() string   { return u.coded.Message + ": " + u.cause.Error() }
func (u *unavailable) Unwrap() []error { return []error{u.coded, u.cause} }
