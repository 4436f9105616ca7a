//go:build unix

package store

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// ---- (B) content-addressed files + pebble index ----

type layoutBenchFileStore struct {
	root string
	db   *pebble.DB // digest -> size
}

func layoutBenchOpenFileStore(dir string) (*layoutBenchFileStore, error) {
	for _, d := range []string{"tmp", "blobs/sha256", "index"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	db, err := pebble.Open(filepath.Join(dir, "index"), &pebble.Options{
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             layoutBenchQuietLogger{},
	})
	if err != nil {
		return nil, err
	}
	return &layoutBenchFileStore{root: dir, db: db}, nil
}

func (s *layoutBenchFileStore) blobPath(digest string) string {
	hexd := digest[len("sha256:"):]
	return filepath.Join(s.root, "blobs", "sha256", hexd[:2], hexd)
}

func layoutBenchSyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

func (s *layoutBenchFileStore) write(digest string, r io.Reader, size int64, buf []byte) (time.Time, error) {
	f, err := os.CreateTemp(filepath.Join(s.root, "tmp"), "upload-*")
	if err != nil {
		return time.Time{}, err
	}
	tmp := f.Name()
	fail := func(err error) (time.Time, error) {
		f.Close()
		os.Remove(tmp)
		return time.Time{}, err
	}
	h := sha256.New()
	var total int64
	for {
		n, err := io.ReadFull(r, buf[:layoutBenchChunk])
		if n > 0 {
			h.Write(buf[:n])
			if _, err := f.Write(buf[:n]); err != nil {
				return fail(err)
			}
			total += int64(n)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return fail(err)
		}
	}
	if total != size || "sha256:"+hex.EncodeToString(h.Sum(nil)) != digest {
		return fail(errLayoutBenchDigest)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return time.Time{}, err
	}
	final := s.blobPath(digest)
	shard := filepath.Dir(final)
	_, statErr := os.Stat(shard)
	if err := os.MkdirAll(shard, 0o755); err != nil {
		os.Remove(tmp)
		return time.Time{}, err
	}
	if err := os.Rename(tmp, final); err != nil {
		os.Remove(tmp)
		return time.Time{}, err
	}
	if err := layoutBenchSyncDir(shard); err != nil {
		return time.Time{}, err
	}
	if statErr != nil { // the shard directory is new: make its entry durable too
		if err := layoutBenchSyncDir(filepath.Dir(shard)); err != nil {
			return time.Time{}, err
		}
	}
	if err := s.db.Set([]byte(digest), binary.BigEndian.AppendUint64(nil, uint64(size)), pebble.Sync); err != nil {
		return time.Time{}, err
	}
	return time.Now(), nil
}

// copyTo is os.Open + io.Copy. When w is a *net.TCPConn, io.Copy ends up in
// sendfile(2): the bytes go from the page cache to the socket without passing
// through user space.
func (s *layoutBenchFileStore) copyTo(digest string, w io.Writer) (int64, error) {
	v, closer, err := s.db.Get([]byte(digest))
	if err != nil {
		return 0, err
	}
	size := int64(binary.BigEndian.Uint64(v))
	closer.Close()
	f, err := os.Open(s.blobPath(digest))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n, err := io.Copy(w, f)
	if err == nil && n != size {
		err = fmt.Errorf("layout bench: read %d bytes, want %d", n, size)
	}
	return n, err
}

func (s *layoutBenchFileStore) close() error { return s.db.Close() }
