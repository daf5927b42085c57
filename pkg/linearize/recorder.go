package linearize

import (
	"math"
	"slices"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// Recorder collects a history from concurrent clients. Times are
// time.Since(base) in nanoseconds, so one clock orders every client.
//
// The history rules of STYLE.md §4: a definite answer is recorded with its
// return time; an unknown outcome is recorded with Return = MaxInt64 (it
// may take effect at any later moment) and the client must continue under
// a fresh ClientId (Pending.Unknown returns it); a definite refusal (503,
// 4xx: nothing appended) and a failed read are dropped.
type Recorder struct {
	base time.Time

	mu      sync.Mutex
	ops     []porcupine.Operation
	clients int
}

// NewRecorder starts a history whose time zero is now.
func NewRecorder() *Recorder { return &Recorder{base: time.Now()} }

// Now is the recorder's clock: nanoseconds since the base.
func (r *Recorder) Now() int64 { return int64(time.Since(r.base)) }

// NewClient returns an unused ClientId.
func (r *Recorder) NewClient() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	id := r.clients
	r.clients++
	return id
}

// Pending is an operation that has been called and not yet answered.
type Pending struct {
	r      *Recorder
	client int
	in     Input
	call   int64
}

// Begin records the call of in by client, now.
func (r *Recorder) Begin(client int, in Input) *Pending {
	return &Pending{r: r, client: client, in: in, call: r.Now()}
}

// Call is the call time of the operation.
func (p *Pending) Call() int64 { return p.call }

// Ok records a definite answer, now.
func (p *Pending) Ok(out Output) {
	out.Unknown = false
	p.r.add(porcupine.Operation{ClientId: p.client, Input: p.in, Call: p.call, Output: out, Return: p.r.Now()})
}

// Unknown records an append whose outcome is unknown (id: the id the
// server named, 0 if none) and returns the ClientId the client must use
// from now on.
func (p *Pending) Unknown(id int) int {
	p.r.add(porcupine.Operation{ClientId: p.client, Input: p.in, Call: p.call,
		Output: Output{ID: id, Unknown: true}, Return: math.MaxInt64})
	return p.r.NewClient()
}

// Refused drops the operation: it certainly had no effect (an append
// refused with 503/4xx, or a read that failed).
func (p *Pending) Refused() {}

func (r *Recorder) add(op porcupine.Operation) {
	r.mu.Lock()
	r.ops = append(r.ops, op)
	r.mu.Unlock()
}

// History is a copy of the operations recorded so far.
func (r *Recorder) History() []porcupine.Operation {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.ops)
}

// Len is the number of operations recorded so far.
func (r *Recorder) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ops)
}
