package master

import (
	"math/rand/v2"
	"testing"
)

// ackIndexReference is the definition, spelled out: the largest index that
// at least w matches reach.
func ackIndexReference(matches []uint64, w int) uint64 {
	var best uint64
	for _, cand := range matches {
		if CountAtLeast(matches, cand) >= w && cand > best {
			best = cand
		}
	}
	return best
}

func TestAckIndexMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 20000; i++ {
		n := 1 + rng.IntN(7)
		matches := make([]uint64, n)
		for k := range matches {
			matches[k] = uint64(rng.IntN(10))
		}
		w := 1 + rng.IntN(n)
		if got, want := AckIndex(matches, w), ackIndexReference(matches, w); got != want {
			t.Fatalf("#%d AckIndex(%v, %d) = %d, want %d", i, matches, w, got, want)
		}
	}
}

func TestAckIndexEdges(t *testing.T) {
	tests := []struct {
		matches []uint64
		w       int
		want    uint64
	}{
		{nil, 1, 0},
		{[]uint64{5}, 1, 5},
		{[]uint64{5, 3, 9}, 2, 5},
		{[]uint64{5, 3, 9}, 3, 3},
		{[]uint64{5, 3, 9}, 4, 0}, // more acks than voters: never
		{[]uint64{5, 3, 9}, 0, 9},
	}
	for i, tt := range tests {
		if got := AckIndex(tt.matches, tt.w); got != tt.want {
			t.Errorf("#%d AckIndex(%v, %d) = %d, want %d", i, tt.matches, tt.w, got, tt.want)
		}
	}
}

func TestHealthOf(t *testing.T) {
	tests := []struct {
		silent int64
		want   Health
	}{
		{0, Healthy}, {9, Healthy}, {10, Suspected}, {19, Suspected}, {20, Unhealthy}, {1000, Unhealthy},
	}
	for i, tt := range tests {
		// heartbeat every 5 ticks, unhealthy after 3 missed
		if got := HealthOf(tt.silent, 5, 3); got != tt.want {
			t.Errorf("#%d HealthOf(%d) = %s, want %s", i, tt.silent, got, tt.want)
		}
	}
}
