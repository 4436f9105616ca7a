package main

import (
	"crypto/sha256"
	"io"
	"net"
	"os"
	"runtime"
	"syscall"
	"time"
)

// relayFloor measures, on one thread, what the bytes of a verifying fill
// cost in CPU per 10^9 bytes on this machine with nothing else in the
// way: receiving them over loopback TCP alone (recv), and a minimal relay
// that receives, hashes with sha256, writes a file in dir and sends them
// on over a second loopback connection (relay). Best of three over
// 128 MiB each. The sender and the sink run on threads of their own, not
// counted. Zero when a socket or the file cannot be made.
func relayFloor(dir string) (recv, relay float64) {
	for i := 0; i < 3; i++ {
		r, err := floorRun(dir, false)
		if err == nil && r > 0 && (recv == 0 || r < recv) {
			recv = r
		}
		r, err = floorRun(dir, true)
		if err == nil && r > 0 && (relay == 0 || r < relay) {
			relay = r
		}
	}
	return recv, relay
}

const floorBytes = 128 << 20

func floorRun(dir string, relay bool) (float64, error) {
	in, stopIn, err := floorConn(func(c net.Conn) {
		buf := make([]byte, 1<<20)
		for n := 0; n < floorBytes; n += len(buf) {
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	})
	if err != nil {
		return 0, err
	}
	defer stopIn()
	var out net.Conn
	var f *os.File
	if relay {
		var stopOut func()
		if out, stopOut, err = floorConn(func(c net.Conn) { io.Copy(io.Discard, c) }); err != nil {
			return 0, err
		}
		defer stopOut()
		if f, err = os.CreateTemp(dir, "floor-"); err != nil {
			return 0, err
		}
		defer os.Remove(f.Name())
		defer f.Close()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	c0 := threadCPU()
	h := sha256.New()
	buf := make([]byte, 256<<10)
	for got := 0; got < floorBytes; {
		n, err := in.Read(buf)
		got += n
		if relay && n > 0 {
			h.Write(buf[:n])
			if _, err := f.Write(buf[:n]); err != nil {
				return 0, err
			}
			if _, err := out.Write(buf[:n]); err != nil {
				return 0, err
			}
		}
		if err != nil {
			return 0, err
		}
	}
	return cpuPerGB(threadCPU()-c0, floorBytes), nil
}

// floorConn returns the client end of a loopback connection whose server
// end serve runs on (in a goroutine), and how to close both.
func floorConn(serve func(net.Conn)) (net.Conn, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		accepted <- c
		serve(c)
		c.Close()
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return nil, nil, err
	}
	srv := <-accepted
	return c, func() {
		c.Close()
		if srv != nil {
			srv.Close()
		}
	}, nil
}

// threadCPU is the calling thread's user and system time.
func threadCPU() time.Duration {
	var r syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_THREAD, &r)
	return time.Duration(r.Utime.Nano() + r.Stime.Nano())
}
