// Package linearize holds the porcupine model of replog's log (an
// append-only list of messages), a thread-safe recorder of the history that
// real clients observe, and the check that ties them together.
//
// The model is STYLE.md §4: Append and ReadAll operations on one log, with
// appends whose outcome is unknown (504, transport errors, writes below a
// majority) forking the state into "took effect" and "did not".
package linearize

import (
	"fmt"
	"hash/fnv"
	"strings"

	"github.com/anishathalye/porcupine"
)

// Op is the kind of an operation.
type Op uint8

const (
	// Append is POST /insert.
	Append Op = iota
	// ReadAll is GET /get-all?readConcern=linearizable.
	ReadAll
)

// Input is what a client asked for.
type Input struct {
	Op  Op
	Msg string // Append: the message
	Key string // Append: the idempotency key ("" for none)
}

// Output is what the client was told.
type Output struct {
	// ID is the id an Append was given; 0 when unknown.
	ID int
	// Msgs is what a ReadAll returned, in id order (ids 1..len(Msgs)).
	Msgs []string
	// Unknown marks an Append whose outcome is not known: it may or may not
	// have taken effect (and if it did, at ID when ID is not 0).
	Unknown bool
}

// entry is one message of the log.
type entry struct {
	msg, key string
}

// state is a persistent (never mutated, structurally shared) list of
// entries, newest first: appending allocates one node and shares the rest,
// which is the copy-on-write of STYLE.md §4 without copying the slice at
// every step (histories reach thousands of entries).
//
// Invariant: n == prev.n+1 and hash covers every entry up to this one.
type state struct {
	prev *state
	e    entry
	n    int
	hash uint64
}

// length is the number of entries; nil is the empty log.
func (s *state) length() int {
	if s == nil {
		return 0
	}
	return s.n
}

func (s *state) hashOf() uint64 {
	if s == nil {
		return 0
	}
	return s.hash
}

// push returns s with e appended; s is unchanged.
func (s *state) push(e entry) *state {
	h := fnv.New64a()
	var b [8]byte
	prev := s.hashOf()
	for i := range b {
		b[i] = byte(prev >> (8 * i))
	}
	h.Write(b[:])
	h.Write([]byte(e.msg))
	return &state{prev: s, e: e, n: s.length() + 1, hash: h.Sum64()}
}

// keyAt is the id of the entry holding key, or 0.
func (s *state) keyAt(key string) int {
	for p := s; p != nil; p = p.prev {
		if p.e.key == key {
			return p.n
		}
	}
	return 0
}

// equal compares two logs message by message; shared tails end the walk.
func (s *state) equal(o *state) bool {
	if s.length() != o.length() || s.hashOf() != o.hashOf() {
		return false
	}
	for a, b := s, o; a != b; a, b = a.prev, b.prev {
		if a.e != b.e {
			return false
		}
	}
	return true
}

// matches reports whether the log holds exactly msgs.
func (s *state) matches(msgs []string) bool {
	if s.length() != len(msgs) {
		return false
	}
	i := len(msgs) - 1
	for p := s; p != nil; p = p.prev {
		if p.e.msg != msgs[i] {
			return false
		}
		i--
	}
	return true
}

func (s *state) messages() []string {
	out := make([]string, s.length())
	for p := s; p != nil; p = p.prev {
		out[p.n-1] = p.e.msg
	}
	return out
}

// step is the sequential specification: every state the log can be in
// after in/out from s (none when the step is impossible).
func step(s *state, in Input, out Output, keyMayRepeat func(string) bool) []*state {
	switch in.Op {
	case Append:
		// Property 5: a retry with a known key returns the first id.
		if in.Key != "" && keyMayRepeat(in.Key) {
			if k := s.keyAt(in.Key); k != 0 {
				if out.Unknown || out.ID == k {
					return []*state{s}
				}
				return nil
			}
		}
		n := s.length()
		next := s.push(entry{msg: in.Msg, key: in.Key})
		if out.Unknown {
			if out.ID == 0 || out.ID == n+1 {
				return []*state{s, next}
			}
			return []*state{s}
		}
		if out.ID == n+1 {
			return []*state{next}
		}
		return nil
	case ReadAll:
		if s.matches(out.Msgs) {
			return []*state{s}
		}
		return nil
	}
	return nil
}

// newModel builds the model. keyMayRepeat tells whether more than one
// operation of the history carries the key: a key carried by one operation
// only cannot be in the log before that operation, so its lookup (a walk
// of the whole log) is skipped.
func newModel(keyMayRepeat func(string) bool) porcupine.Model {
	nm := porcupine.NondeterministicModel{
		Init: func() []any { return []any{(*state)(nil)} },
		Step: func(st, in, out any) []any {
			next := step(st.(*state), in.(Input), out.(Output), keyMayRepeat)
			res := make([]any, len(next))
			for i, s := range next {
				res[i] = s
			}
			return res
		},
		Equal:             func(a, b any) bool { return a.(*state).equal(b.(*state)) },
		Hash:              func(a any) uint64 { return a.(*state).hashOf() },
		DescribeOperation: func(in, out any) string { return DescribeOperation(in.(Input), out.(Output)) },
		DescribeState:     func(st any) string { return describeState(st.(*state)) },
	}
	return nm.ToModel()
}

// Model is the log model for any history (every key may repeat).
var Model = newModel(func(string) bool { return true })

// ModelFor is Model specialised to history: identical verdicts, faster steps.
func ModelFor(history []porcupine.Operation) porcupine.Model {
	count := map[string]int{}
	for _, op := range history {
		if in, ok := op.Input.(Input); ok && in.Op == Append && in.Key != "" {
			count[in.Key]++
		}
	}
	return newModel(func(k string) bool { return count[k] > 1 })
}

// DescribeOperation renders `append("a") -> 7`, `append("a") -> ?` or
// `readAll() -> [a b]` (long reads are shortened to their length and tail).
func DescribeOperation(in Input, out Output) string {
	switch in.Op {
	case Append:
		switch {
		case out.Unknown && out.ID != 0:
			return fmt.Sprintf("append(%q) -> ?%d", in.Msg, out.ID)
		case out.Unknown:
			return fmt.Sprintf("append(%q) -> ?", in.Msg)
		}
		return fmt.Sprintf("append(%q) -> %d", in.Msg, out.ID)
	case ReadAll:
		return "readAll() -> " + describeMsgs(out.Msgs)
	}
	return fmt.Sprintf("op(%d)", in.Op)
}

func describeMsgs(msgs []string) string {
	const tail = 4
	if len(msgs) <= tail {
		return "[" + strings.Join(msgs, " ") + "]"
	}
	return fmt.Sprintf("[%d msgs: … %s]", len(msgs), strings.Join(msgs[len(msgs)-tail:], " "))
}

func describeState(s *state) string { return describeMsgs(s.messages()) }
