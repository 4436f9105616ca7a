package reclaim

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

func TestTarget(t *testing.T) {
	limits := Settings{MaxBytes: 1000, HighWatermark: 0.9, LowWatermark: 0.8}
	floor := Settings{MinFreeBytes: 100}
	both := Settings{MaxBytes: 1000, HighWatermark: 0.9, LowWatermark: 0.8, MinFreeBytes: 100}
	tests := []struct {
		name              string
		s                 Settings
		used, extra, free int64
		periodic          bool
		target            int64
		due               bool
	}{
		{name: "no limits", s: Settings{}, used: 5000, extra: 100, free: 1, target: 5000},
		{name: "under the high watermark", s: limits, used: 800, free: -1, periodic: true, target: 800},
		{name: "at the high watermark", s: limits, used: 900, free: -1, periodic: true, target: 900},
		{name: "past the high watermark: down to low", s: limits, used: 950, free: -1, periodic: true, target: 800, due: true},
		{name: "a reservation past high leaves room for it", s: limits, used: 850, extra: 100, free: -1, target: 700, due: true},
		{name: "a reservation that fits under high", s: limits, used: 700, extra: 150, free: -1, target: 700},
		{name: "past MaxBytes with high at 1", s: Settings{MaxBytes: 1000, HighWatermark: 1, LowWatermark: 0.5}, used: 990, extra: 20, free: -1, target: 480, due: true},
		{name: "more than low needed: down to nothing", s: limits, used: 950, extra: 900, free: -1, target: 0, due: true},
		{name: "free space above the floor", s: floor, used: 500, extra: 10, free: 200, target: 500},
		{name: "free space would drop below the floor", s: floor, used: 500, extra: 80, free: 150, target: 470, due: true},
		{name: "free space already below the floor", s: floor, used: 500, free: 40, periodic: true, target: 440, due: true},
		{name: "free space unknown", s: floor, used: 500, extra: 80, free: -1, target: 500},
		{name: "both limits: the lower target", s: both, used: 950, free: 20, periodic: true, target: 800, due: true},
		{name: "both limits: the floor is lower", s: both, used: 950, free: 0, extra: 50, target: 750, due: true},
		{name: "the floor asks for more than the store holds", s: floor, used: 30, extra: 500, free: 100, target: 0, due: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target, due := Target(tt.s, tt.used, tt.extra, tt.free, tt.periodic)
			if target != tt.target || due != tt.due {
				t.Fatalf("Target = %d, %v; want %d, %v", target, due, tt.target, tt.due)
			}
		})
	}
}

func TestNoRoom(t *testing.T) {
	s := Settings{MaxBytes: 1000, HighWatermark: 0.9, LowWatermark: 0.8, MinFreeBytes: 100}
	tests := []struct {
		name              string
		used, extra, free int64
		want              string // a part of the reason; "" when it fits
	}{
		{name: "fits", used: 500, extra: 500, free: 1000},
		{name: "fits, free space unknown", used: 500, extra: 500, free: -1},
		{name: "over MaxBytes", used: 600, extra: 500, free: 1000, want: "the store is full (600 of 1000 bytes used, 500 more needed)"},
		{name: "below the floor", used: 100, extra: 50, free: 120, want: "less than 100 bytes free"},
		{name: "both: the disk is named", used: 990, extra: 50, free: 120, want: "less than 100 bytes free"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := noRoom(s, tt.used, tt.extra, tt.free)
			if tt.want == "" && got != "" || !strings.Contains(got, tt.want) {
				t.Fatalf("noRoom = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestRunTakesANewInterval changes EvictInterval while Run runs, as a
// config reload does: the next turn already waits the new interval.
func TestRunTakesANewInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var every atomic.Int64
		every.Store(int64(time.Hour))
		var turns atomic.Int64
		settings := func() Settings {
			turns.Add(1)
			return Settings{EvictInterval: time.Duration(every.Load())} // no limits: a turn only waits
		}
		c := New(nil, Options{}).Capacity(CapacityOptions{Settings: settings})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); c.Run(ctx) }()

		// Each turn asks for the settings twice: for the interval before
		// it waits, for the limits after.
		time.Sleep(90 * time.Minute) // the first turn is done, the second waits until 2h
		synctest.Wait()
		every.Store(int64(time.Minute))
		time.Sleep(30*time.Minute + 30*time.Second) // the third turn starts at 2h, waiting a minute
		synctest.Wait()
		if got := turns.Load(); got != 5 {
			t.Fatalf("settings asked %d times by 2h00m30s, want 5", got)
		}
		time.Sleep(10 * time.Minute) // ten turns of a minute
		synctest.Wait()
		if got := turns.Load(); got != 25 {
			t.Fatalf("settings asked %d times by 2h10m30s, want 25", got)
		}
		cancel()
		<-done
	})
}
