package master

import "slices"

// AckIndex returns the highest index that at least w of the given match
// indexes have reached: the w-th largest. It is the write-concern rule (an
// entry is acknowledged with concern w once w voters hold it durably) and,
// with w = Majority(len(matches)), the commit rule. w <= 0 gives the largest
// match; w > len(matches) gives 0 (no index can be held by more voters than
// there are).
func AckIndex(matches []uint64, w int) uint64 {
	if w > len(matches) || len(matches) == 0 {
		return 0
	}
	if w <= 0 {
		w = 1
	}
	// Clusters are small (3 to 7 voters): sorting a copy on the stack is
	// cheaper than anything clever.
	var buf [16]uint64
	s := append(buf[:0], matches...)
	slices.Sort(s)
	return s[len(s)-w]
}

// Majority is the size of a majority of n voters.
func Majority(n int) int { return n/2 + 1 }

// CountAtLeast is how many matches are at or above index.
func CountAtLeast(matches []uint64, index uint64) int {
	n := 0
	for _, m := range matches {
		if m >= index {
			n++
		}
	}
	return n
}

// Health of a follower as the master sees it.
type Health string

const (
	Healthy   Health = "healthy"
	Suspected Health = "suspected"
	Unhealthy Health = "unhealthy"
)

// HealthOf classifies a follower from the ticks since the master last heard
// from it. One heartbeat interval of silence is normal (a heartbeat is in
// flight); each further interval is a missed heartbeat. A follower that missed
// one is Suspected, one that missed maxMissed or more is Unhealthy.
func HealthOf(silentTicks int64, heartbeatTicks, maxMissed int) Health {
	if heartbeatTicks < 1 {
		heartbeatTicks = 1
	}
	missed := silentTicks/int64(heartbeatTicks) - 1
	switch {
	case missed >= int64(maxMissed):
		return Unhealthy
	case missed >= 1:
		return Suspected
	}
	return Healthy
}
