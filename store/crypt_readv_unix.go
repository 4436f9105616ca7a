//go:build darwin || linux || openbsd

package store

import (
	"errors"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// readvAt fills the buffers of iov in turn from f at off, with one preadv
// as long as the file has the bytes. It returns how many bytes it read,
// and io.EOF if the file ends first. It changes iov.
func readvAt(f *os.File, iov [][]byte, off int64) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	total := 0
	for len(iov) > 0 {
		var n int
		var rerr error
		if err := rc.Read(func(fd uintptr) bool {
			n, rerr = unix.Preadv(int(fd), iov, off)
			return true
		}); err != nil {
			return total, err
		}
		if errors.Is(rerr, unix.EINTR) {
			continue
		}
		if rerr != nil {
			return total, rerr
		}
		if n == 0 {
			return total, io.EOF
		}
		total, off = total+n, off+int64(n)
		iov = advance(iov, n)
	}
	return total, nil
}
