package s3store_test

import (
	"bytes"
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/tandem-chat/tandem/handoff"
	"github.com/tandem-chat/tandem/internal/errs"
	"github.com/tandem-chat/tandem/internal/s3store"
)

// fakeS3 is gofakes3, an in-memory server of the S3 API, on a local port:
// the real minio-go client code runs against it (signing, multi-object
// delete, error documents).
func fakeS3(t *testing.T, bucket string) (*httptest.Server, *s3mem.Backend) {
	t.Helper()
	backend := s3mem.New()
	if err := backend.CreateBucket(bucket); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gofakes3.New(backend).Server())
	t.Cleanup(srv.Close)
	return srv, backend
}

func TestStore(t *testing.T) {
	srv, backend := fakeS3(t, "tandem-test")
	ctx := context.Background()
	st, err := s3store.New(s3store.Config{Endpoint: srv.URL, Bucket: "tandem-test", Region: "us-east-1",
		AccessKeyID: "AKIATEST", SecretAccessKey: "secret", Prefix: "t/"})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Check(ctx); err != nil {
		t.Fatalf("Check: %v", err)
	}

	photo := bytes.Repeat([]byte{0xff, 0xd8, 0xff, 1, 2, 3}, 5000)
	if err := st.Put(ctx, handoff.Blob{Key: "conversations/c1/a1", AttachmentID: "a1", Type: "image/jpeg", Data: photo}); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if err := st.Put(ctx, handoff.Blob{Key: "conversations/c1/a1.thumb", AttachmentID: "a1", Type: "image/jpeg", Data: []byte("thumb")}); err != nil {
		t.Fatalf("Put: %v", err)
	}
	obj, err := backend.HeadObject("tandem-test", "t/conversations/c1/a1")
	if err != nil {
		t.Fatalf("the object is not under the prefix: %v", err)
	}
	if obj.Metadata["Content-Type"] != "image/jpeg" {
		t.Errorf("stored with metadata %v", obj.Metadata)
	}
	got, err := st.Get(ctx, "conversations/c1/a1")
	if err != nil || !bytes.Equal(got, photo) {
		t.Fatalf("Get: %d bytes, %v", len(got), err)
	}
	if _, err := st.Get(ctx, "conversations/c1/nope"); errs.CodeOf(err) != errs.NotFound {
		t.Errorf("Get of a missing key: %v, want NotFound", err)
	}
	// Deleting keys that exist and one that does not.
	if err := st.Delete(ctx, "conversations/c1/a1", "conversations/c1/a1.thumb", "conversations/c9/gone"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := st.Get(ctx, "conversations/c1/a1"); errs.CodeOf(err) != errs.NotFound {
		t.Errorf("Get after Delete: %v", err)
	}
	if list, err := backend.ListBucket("tandem-test", nil, gofakes3.ListBucketPage{}); err != nil || len(list.Contents) != 0 {
		t.Errorf("objects left after Delete: %+v (%v)", list, err)
	}

	t.Run("MissingBucket", func(t *testing.T) {
		other, _ := s3store.New(s3store.Config{Endpoint: srv.URL, Bucket: "no-such-bucket", Region: "us-east-1", AccessKeyID: "k", SecretAccessKey: "s"})
		if err := other.Check(ctx); err == nil {
			t.Fatal("Check passed for a bucket that does not exist")
		}
	})
	t.Run("StoreDown", func(t *testing.T) {
		down := httptest.NewServer(nil)
		url := down.URL
		down.Close()
		st, _ := s3store.New(s3store.Config{Endpoint: url, Bucket: "attachments", Timeout: 5 * time.Second})
		if err := st.Put(ctx, handoff.Blob{Key: "k", Data: []byte("x")}); errs.CodeOf(err) != errs.Unavailable {
			t.Errorf("Put to a store that is down: %v, want Unavailable", err)
		}
		if _, err := st.Get(ctx, "k"); errs.CodeOf(err) != errs.Unavailable {
			t.Errorf("Get from a store that is down: %v, want Unavailable", err)
		}
	})
	t.Run("BadConfig", func(t *testing.T) {
		for _, c := range []s3store.Config{{Endpoint: "s3.example.com", Bucket: "b"}, {Endpoint: "https://s3.example.com"}} {
			if _, err := s3store.New(c); err == nil {
				t.Errorf("New(%+v) accepted", c)
			}
		}
	})
}
