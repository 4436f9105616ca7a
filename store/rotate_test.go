package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// rtFixture is a store with encrypted blobs and manifests whose key files
// live in dir.
type rtFixture struct {
	dir, oldFile, newFile string
	oldKey, newKey        []byte
	blobs                 map[string][]byte
	manifests             map[string]string
}

func newRTFixture(t *testing.T) *rtFixture {
	f := &rtFixture{dir: t.TempDir(), oldKey: testKey, newKey: bytes.Repeat([]byte{9}, KeySize),
		blobs: map[string][]byte{}, manifests: map[string]string{}}
	f.oldFile, f.newFile = filepath.Join(f.dir, "old.key"), filepath.Join(f.dir, "new.key")
	os.WriteFile(f.oldFile, f.oldKey, 0o600)
	os.WriteFile(f.newFile, f.newKey, 0o600)
	return f
}

// readKey reads a key file as the node does (raw bytes in these tests).
func (f *rtFixture) readKey(path string) ([]byte, error) { return os.ReadFile(path) }

func (f *rtFixture) open(t *testing.T, key []byte, file string) (*Store, error) {
	t.Helper()
	return Open(context.Background(), filepath.Join(f.dir, "data"), Options{
		Encryption: &Encryption{Key: key, KeyFile: file, All: true, ReadKey: f.readKey}})
}

func (f *rtFixture) fill(t *testing.T, s *Store, n int) {
	for i := range n {
		data := stBytes(1000+i*3000, uint64(100+i))
		f.blobs[ecCommit(t, s, data)] = data
		body := fmt.Sprintf(`{"n":%d}`, i)
		d := stSHA256([]byte(body))
		b := s.NewBatch()
		b.PutManifest(d, &Manifest{MediaType: "application/json", Body: []byte(body)})
		b.PutImage(LocalKey("app"), d, Image{})
		if err := b.Commit(); err != nil {
			t.Fatal(err)
		}
		f.manifests[d] = body
	}
}

// check reads everything back, manifests from pebble (not the hot cache).
func (f *rtFixture) check(t *testing.T, s *Store) {
	t.Helper()
	s.hot.Clear()
	for d, data := range f.blobs {
		if got, err := ecRead(s, d, int64(len(data)), 0, -1); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("blob %s: %d bytes, %v", d, len(got), err)
		}
	}
	for d, body := range f.manifests {
		if m, err := s.GetManifest(context.Background(), d); err != nil || string(m.Body) != body {
			t.Fatalf("manifest %s: %v", d, err)
		}
	}
}

// TestRotateKeyUnderReads rotates while readers pull every blob: every
// read is correct, and the store then opens with the new key only.
func TestRotateKeyUnderReads(t *testing.T) {
	f := newRTFixture(t)
	s, err := f.open(t, f.oldKey, f.oldFile)
	if err != nil {
		t.Fatal(err)
	}
	f.fill(t, s, 20)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			for {
				for d, data := range f.blobs {
					select {
					case <-stop:
						return
					default:
					}
					if got, err := ecRead(s, d, int64(len(data)), 0, -1); err != nil || !bytes.Equal(got, data) {
						errs <- fmt.Errorf("blob %s during the rotation: %d bytes, %v", d, len(got), err)
						return
					}
				}
			}
		})
	}
	r, err := s.RotateKey(context.Background(), f.newKey, f.newFile)
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if err != nil || r.Blobs != 20 || r.Manifests != 20 || r.To != Fingerprint(f.newKey) {
		t.Fatalf("RotateKey = %+v, %v", r, err)
	}
	f.check(t, s)
	if st := s.Encryption(); st.Key != Fingerprint(f.newKey) || st.KeyFile != f.newFile {
		t.Errorf("Encryption() = %+v after the rotation", st)
	}
	s.Close()
	if _, err := f.open(t, f.oldKey, f.oldFile); !errors.Is(err, ErrWrongKey) || !strings.Contains(err.Error(), f.newFile) {
		t.Errorf("open with the old key after the rotation = %v; want ErrWrongKey naming %s", err, f.newFile)
	}
	s, err = f.open(t, f.newKey, f.newFile)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	f.check(t, s)
}

// TestRotateKeyInterrupted: a rotation cut short (as by kill -9: its
// record written, part of the records rewrapped) is finished at the next
// start with either key configured, and nothing is lost; without the
// other key file the store refuses to start and names it.
func TestRotateKeyInterrupted(t *testing.T) {
	for _, startWith := range []string{"old", "new", "old without the new file"} {
		t.Run(startWith, func(t *testing.T) {
			f := newRTFixture(t)
			s, err := f.open(t, f.oldKey, f.oldFile)
			if err != nil {
				t.Fatal(err)
			}
			f.fill(t, s, 6)
			// What RotateKey does, stopped after two blobs.
			nk, _ := newMasterKey(f.newKey)
			rec := keyRecord{Key: nk.fp, File: f.newFile, From: Fingerprint(f.oldKey), FromFile: f.oldFile}
			if err := s.putKeyRecord(rotationKey, rec); err != nil {
				t.Fatal(err)
			}
			s.enc.adopt(nk, f.newFile)
			n := 0
			for d := range f.blobs {
				if n++; n <= 2 {
					s.rewrapBlob(d, rec.From)
				}
			}
			f.fill(t, s, 1) // written under the new key mid-rotation
			s.Close()

			key, file := f.oldKey, f.oldFile
			switch startWith {
			case "new":
				key, file = f.newKey, f.newFile
			case "old without the new file":
				os.Rename(f.newFile, f.newFile+".gone")
				_, err := f.open(t, key, file)
				if !errors.Is(err, ErrWrongKey) || !strings.Contains(err.Error(), "restore "+f.newFile) {
					t.Fatalf("open without the new key file = %v; want ErrWrongKey saying to restore it", err)
				}
				os.Rename(f.newFile+".gone", f.newFile)
			}
			s, err = f.open(t, key, file)
			if err != nil {
				t.Fatalf("open after the interrupted rotation: %v", err)
			}
			f.check(t, s)
			s.Close()
			s, err = f.open(t, f.newKey, f.newFile)
			if err != nil {
				t.Fatalf("open with the new key alone: %v", err)
			}
			defer s.Close()
			f.check(t, s)
		})
	}
}
