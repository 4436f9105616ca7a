package store

import (
	"os"
	"syscall"
)

// sync_file_range(2) flags.
const (
	syncFileRangeWaitBefore = 1
	syncFileRangeWrite      = 2
	syncFileRangeWaitAfter  = 4
)

// syncRange writes the file's bytes below its size rounded down to 64 KiB
// (so the pages the writer appends to are left alone) to the disk and
// waits for them. It does not flush the disk's cache or the
// file's metadata: the commit's fsync still does, with little data left.
func syncRange(f *os.File) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	end := st.Size() &^ (64<<10 - 1)
	if end == 0 {
		return nil
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		_, _, errno := syscall.Syscall6(syscall.SYS_SYNC_FILE_RANGE, fd, 0, uintptr(end),
			syncFileRangeWaitBefore|syncFileRangeWrite|syncFileRangeWaitAfter, 0, 0)
		if errno != 0 {
			serr = errno
		}
	})
	if err != nil {
		return err
	}
	return serr
}
