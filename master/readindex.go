package master

// ReadRequest is a linearizable read waiting for the master to confirm,
// with a heartbeat round, that it still is the master.
type ReadRequest struct {
	// Seq orders requests; heartbeats carry the latest Seq and their answers
	// confirm every request up to it.
	Seq uint64
	// Index is the commit index when the request arrived: the read index.
	Index uint64
	// From is who asked (the master itself, or a sentinel) and Context its
	// identifier for the request.
	From    string
	Context uint64
	acks    map[string]bool
}

// ReadIndexQueue holds reads in arrival order (Raft thesis §6.4, ReadIndex).
type ReadIndexQueue struct {
	seq     uint64
	pending []*ReadRequest
}

// Add queues a read at the given commit index and returns its Seq.
func (q *ReadIndexQueue) Add(index uint64, from string, ctx uint64) uint64 {
	q.seq++
	q.pending = append(q.pending, &ReadRequest{Seq: q.seq, Index: index, From: from, Context: ctx, acks: map[string]bool{}})
	return q.seq
}

// Ack records that id answered the heartbeat round seq: it confirms every
// request up to seq.
func (q *ReadIndexQueue) Ack(id string, seq uint64) {
	for _, r := range q.pending {
		if r.Seq > seq {
			break
		}
		r.acks[id] = true
	}
}

// Release removes and returns the requests confirmed by a quorum, in order.
// A later request's acknowledgements include the earlier ones', so the
// confirmed requests are always a prefix.
func (q *ReadIndexQueue) Release(quorum func(acks map[string]bool) bool) []*ReadRequest {
	n := 0
	for n < len(q.pending) && quorum(q.pending[n].acks) {
		n++
	}
	out := q.pending[:n:n]
	q.pending = q.pending[n:]
	return out
}

// Pending reports whether reads wait, and the latest Seq.
func (q *ReadIndexQueue) Pending() (uint64, bool) {
	if len(q.pending) == 0 {
		return 0, false
	}
	return q.pending[len(q.pending)-1].Seq, true
}

// Reset drops every pending read (leadership changed; askers time out and
// ask again).
func (q *ReadIndexQueue) Reset() { q.pending = nil }
