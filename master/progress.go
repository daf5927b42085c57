// Package master holds the leader's rules: each sentinel's replication
// progress and in-flight window, the commit and write-concern arithmetic, and
// sentinel health. It is pure: no clocks, goroutines or I/O; time is counted
// in ticks by the caller.
package master

import "fmt"

// State is how the master is currently sending to one follower.
type State uint8

const (
	// Probe: the master does not know where the follower's log matches; it
	// sends one append at a time and waits for its answer (or a heartbeat
	// response) before sending the next.
	Probe State = iota
	// Replicate: the follower is known to match up to Match; appends are
	// pipelined optimistically, up to the in-flight window.
	Replicate
)

func (s State) String() string {
	if s == Replicate {
		return "replicate"
	}
	return "probe"
}

// Progress is the master's view of one follower.
//
// Invariant: Match < Next.
type Progress struct {
	// Match is the highest index known to be durable on the follower.
	Match uint64
	// Next is the index of the next entry to send.
	Next  uint64
	State State
	// ProbeSent is set in Probe after an append went out; sending pauses
	// until the follower answers or a heartbeat response arrives.
	ProbeSent bool
	// Inflight holds the last index of each append in flight (Replicate).
	Inflight *Inflights
	// RecentActive is set once the follower has answered anything in this
	// master's term.
	RecentActive bool
	// HeardTick is the tick of the last message from the follower.
	HeardTick int64
	// CaughtUpTick is the last tick at which Match equalled the master's last
	// index (for lag reporting).
	CaughtUpTick int64
}

// NewProgress returns the progress of a follower about which nothing is known
// yet: probing from next. window bounds the appends in flight, windowBytes
// (0: no bound) the bytes of entries they carry.
func NewProgress(next uint64, window, windowBytes int, tick int64) *Progress {
	return &Progress{Next: next, Inflight: NewInflights(window, windowBytes), HeardTick: tick, CaughtUpTick: tick}
}

// BecomeProbe resets to probing from Match+1.
func (p *Progress) BecomeProbe() {
	p.State = Probe
	p.ProbeSent = false
	p.Next = p.Match + 1
	p.Inflight.Reset()
}

// BecomeReplicate starts pipelining from Match+1.
func (p *Progress) BecomeReplicate() {
	p.State = Replicate
	p.ProbeSent = false
	p.Next = p.Match + 1
	p.Inflight.Reset()
}

// MaybeUpdate records that the follower holds everything up to n. It returns
// false if n is stale (not above Match).
func (p *Progress) MaybeUpdate(n uint64) bool {
	updated := false
	if p.Match < n {
		p.Match = n
		updated = true
		p.ProbeSent = false
	}
	if p.Next < n+1 {
		p.Next = n + 1
	}
	return updated
}

// SentEntries records that an append of n entries (bytes in all) ending at
// last went out.
func (p *Progress) SentEntries(last uint64, n, bytes int) {
	switch p.State {
	case Replicate:
		if n > 0 {
			p.Next = last + 1
			p.Inflight.Add(last, bytes)
		}
	case Probe:
		p.ProbeSent = true
	}
}

// MaybeDecrTo handles a rejection of the append whose previous index was
// rejected; next is where the master should try next (computed from the
// follower's hint). It returns false for a stale rejection.
func (p *Progress) MaybeDecrTo(rejected, next uint64) bool {
	if p.State == Replicate {
		// Only a rejection of an append after Match is news; older ones
		// are duplicates or reordered.
		if rejected <= p.Match {
			return false
		}
		p.BecomeProbe()
		p.Next = max(p.Match+1, min(next, rejected))
		return true
	}
	// Probe: only the rejection of the append we last sent counts.
	if p.Next-1 != rejected {
		return false
	}
	p.Next = max(p.Match+1, min(next, rejected))
	p.ProbeSent = false
	return true
}

// IsPaused reports whether no append may be sent now.
func (p *Progress) IsPaused() bool {
	switch p.State {
	case Probe:
		return p.ProbeSent
	default:
		return p.Inflight.Full()
	}
}

func (p *Progress) String() string {
	return fmt.Sprintf("%s match=%d next=%d inflight=%d", p.State, p.Match, p.Next, p.Inflight.Count())
}

// Inflights is a bounded FIFO of the appends in flight: their last indexes
// and sizes. It is full at size appends, or once the bytes in flight reach
// maxBytes: a follower far behind (a new member streaming a large log) then
// gets a few full appends at a time rather than the whole log at once, so
// the master reads it from disk in small steps between client requests.
type Inflights struct {
	buf      []inflight
	start    int
	count    int
	bytes    int
	maxBytes int // 0: no bound
}

type inflight struct {
	last  uint64
	bytes int
}

// NewInflights returns a window of size appends (>= 1) and maxBytes bytes
// (0: no bound on bytes).
func NewInflights(size, maxBytes int) *Inflights {
	if size < 1 {
		size = 1
	}
	return &Inflights{buf: make([]inflight, size), maxBytes: max(maxBytes, 0)}
}

// Add records an append in flight. It panics when the window is full: the
// caller must check Full first.
func (in *Inflights) Add(last uint64, bytes int) {
	if in.Full() {
		panic("master: inflights full")
	}
	in.buf[(in.start+in.count)%len(in.buf)] = inflight{last, bytes}
	in.count++
	in.bytes += bytes
}

// FreeLE frees every in-flight append ending at or below to.
func (in *Inflights) FreeLE(to uint64) {
	for in.count > 0 && in.buf[in.start].last <= to {
		in.FreeFirst()
	}
}

// FreeFirst frees the oldest append in flight.
func (in *Inflights) FreeFirst() {
	if in.count > 0 {
		in.bytes -= in.buf[in.start].bytes
		in.start = (in.start + 1) % len(in.buf)
		in.count--
	}
}

// Full reports whether the window is full.
func (in *Inflights) Full() bool {
	return in.count == len(in.buf) || (in.maxBytes > 0 && in.bytes >= in.maxBytes)
}

// Count is the number of appends in flight.
func (in *Inflights) Count() int { return in.count }

// Bytes is the size of the entries in flight.
func (in *Inflights) Bytes() int { return in.bytes }

// Reset empties the window.
func (in *Inflights) Reset() { in.start, in.count, in.bytes = 0, 0, 0 }
