package store

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"berth/internal/oci"
)

// A manifest GET that read the manifest from pebble before a delete
// committed does not put it back in the hot manifests after the delete:
// once deleted (by garbage collection's sweep, or in a batch), a manifest
// is not found by digest, where it was served from memory before.
func TestDeletedManifestDoesNotComeBackHot(t *testing.T) {
	for _, tt := range []struct {
		name string
		del  func(t *testing.T, s *Store, d string) (commit func())
	}{
		{"sweep", func(t *testing.T, s *Store, d string) func() {
			return func() {
				if err := s.Sweep().DeleteManifest(context.Background(), d); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"batch", func(t *testing.T, s *Store, d string) func() {
			b := s.NewBatch()
			t.Cleanup(b.Close)
			if err := b.DeleteManifest(d); err != nil {
				t.Fatal(err)
			}
			return func() {
				if err := b.Commit(); err != nil {
					t.Fatal(err)
				}
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := stOpen(t, t.TempDir())
			d := stSHA256(icBody)
			if err := s.PutManifest(context.Background(), d, &Manifest{MediaType: oci.MediaTypeImageManifest, Body: icBody}); err != nil {
				t.Fatal(err)
			}
			s.dropHot(d) // the GET below misses and reads pebble
			s.hot.Wait()
			read, resume := make(chan struct{}), make(chan struct{})
			var armed atomic.Bool
			armed.Store(true)
			h := func(key []byte) {
				if bytes.Equal(key, manifestKey(d)) && armed.CompareAndSwap(true, false) {
					close(read)
					<-resume
				}
			}
			s.readHook.Store(&h)
			got := make(chan error)
			go func() {
				_, err := s.GetManifest(context.Background(), d)
				got <- err
			}()
			<-read // the GET has read the manifest
			tt.del(t, s, d)()
			close(resume)
			if err := <-got; err != nil {
				t.Fatalf("the GET that read before the delete: %v", err)
			}
			s.hot.Wait()
			if m, err := s.GetManifest(context.Background(), d); !errors.Is(err, ErrNotFound) {
				t.Fatalf("after the delete: %v %v, want ErrNotFound (not a manifest kept in memory)", m != nil, err)
			}
		})
	}
}
