package main

import (
	"io"
	"net"
	"os"
	"runtime"
)

// bestPerGB runs pass three times on a thread of its own and returns the
// least CPU time per 10^9 bytes, pass returning the bytes it handled (a
// run that read no CPU time is not counted). The primitives' rates
// (sha256, AES-GCM) and the encrypted stream's floor are measured by it.
func bestPerGB(pass func() (int64, error)) float64 {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	best := 0.0
	for i := 0; i < 3; i++ {
		t0 := threadCPU()
		n, err := pass()
		cpu := threadCPU() - t0
		if err != nil || n == 0 {
			return 0
		}
		if perGB := cpuPerGB(cpu, n); cpu > 0 && (best == 0 || perGB < best) {
			best = perGB
		}
	}
	return best
}

// floorSpan is the encrypted pipeline's span: 8 sealed 64 KiB chunks.
const floorSpan = 8 * (64<<10 + 16)

// readCopyCPUPerGB is the CPU time reading 10^9 bytes of a file from the
// page cache into user space takes, in the pipeline's spans (one pread
// each), over at most 256 MiB of path.
func readCopyCPUPerGB(path string) float64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	buf := make([]byte, floorSpan)
	return bestPerGB(func() (int64, error) {
		var off int64
		for off < 256<<20 {
			n, err := f.ReadAt(buf, off)
			off += int64(n)
			if err == io.EOF {
				break
			}
			if err != nil {
				return 0, err
			}
		}
		return off, nil
	})
}

// socketWriteCPUPerGB is the CPU time writing 10^9 bytes to a loopback
// TCP connection takes, in the pipeline's spans, while another goroutine
// reads them: the writer's share of what sendfile spares a plaintext blob.
func socketWriteCPUPerGB() float64 {
	c, stop, err := floorConn(func(c net.Conn) {
		io.CopyBuffer(io.Discard, struct{ io.Reader }{c}, make([]byte, readBuf))
	})
	if err != nil {
		return 0
	}
	defer stop()
	buf := make([]byte, floorSpan)
	return bestPerGB(func() (int64, error) {
		var n int64
		for n < 256<<20 {
			k, err := c.Write(buf)
			n += int64(k)
			if err != nil {
				return 0, err
			}
		}
		return n, nil
	})
}
