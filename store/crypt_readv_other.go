//go:build !(darwin || linux || openbsd)

package store

import "os"

// readvAt fills the buffers of iov in turn from f at off. It returns how
// many bytes it read, and io.EOF if the file ends first.
func readvAt(f *os.File, iov [][]byte, off int64) (int, error) {
	total := 0
	for _, b := range iov {
		n, err := f.ReadAt(b, off)
		total, off = total+n, off+int64(n)
		if err != nil {
			return total, err
		}
	}
	return total, nil
}
