package main

import "testing"

// TestPortBookNeverRepeats: a port handed out once is not handed out again,
// even when the picker offers it again (as the kernel does with a port
// that was released and not bound yet).
func TestPortBookNeverRepeats(t *testing.T) {
	var b portBook
	offers := []int{40001, 40001, 40002, 40001, 40003}
	next := 0
	pick := func() (int, error) { p := offers[next%len(offers)]; next++; return p, nil }
	seen := map[int]bool{}
	for range 3 {
		p, err := b.take(pick)
		if err != nil {
			t.Fatal(err)
		}
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
	}
	if _, err := b.take(func() (int, error) { return 40001, nil }); err == nil {
		t.Fatal("a picker that only offers a booked port got a port")
	}
}
