package sentinel

import (
	"testing"

	"github.com/replog/replog/pkg/protocol"
)

// terms is a LogView whose entry i has term terms[i-1].
type terms []uint64

func (l terms) LastIndex() uint64 { return uint64(len(l)) }
func (l terms) Term(i uint64) (uint64, bool) {
	if i == 0 {
		return 0, true
	}
	if i > uint64(len(l)) {
		return 0, false
	}
	return l[i-1], true
}

// Reference: Raft §5.4.1.
func TestIsUpToDate(t *testing.T) {
	log := terms{1, 1, 2}
	tests := []struct {
		lastIndex, lastTerm uint64
		want                bool
	}{
		{3, 2, true},  // same
		{4, 2, true},  // longer, same term
		{2, 2, false}, // shorter, same term
		{1, 3, true},  // later term wins whatever the length
		{9, 1, false}, // earlier term loses whatever the length
		{0, 0, false},
	}
	for i, tt := range tests {
		if got := IsUpToDate(log, tt.lastIndex, tt.lastTerm); got != tt.want {
			t.Errorf("#%d IsUpToDate(%d/%d) = %v, want %v", i, tt.lastIndex, tt.lastTerm, got, tt.want)
		}
	}
}

func ents(first uint64, ts ...uint64) []protocol.Entry {
	var out []protocol.Entry
	for i, t := range ts {
		out = append(out, protocol.Entry{Index: first + uint64(i), Term: t})
	}
	return out
}

// Reference: Raft §5.3.
func TestFindConflict(t *testing.T) {
	log := terms{1, 2, 3}
	tests := []struct {
		ents []protocol.Entry
		want uint64
	}{
		{nil, 0},
		{ents(1, 1, 2, 3), 0},       // all held
		{ents(2, 2, 3), 0},          // a held suffix
		{ents(2, 2, 3, 4), 4},       // new entries after held ones
		{ents(4, 4, 4), 4},          // only new
		{ents(2, 4, 4), 2},          // conflict at 2
		{ents(1, 1, 5, 5, 5, 5), 2}, // conflict in the middle
	}
	for i, tt := range tests {
		if got := FindConflict(log, tt.ents); got != tt.want {
			t.Errorf("#%d FindConflict = %d, want %d", i, got, tt.want)
		}
	}
}

func TestFindConflictByTerm(t *testing.T) {
	log := terms{1, 1, 2, 2, 4, 4}
	tests := []struct {
		index, term, want uint64
	}{
		{6, 4, 6},
		{6, 3, 4}, // skip all of term 4
		{6, 2, 4},
		{6, 1, 2},
		{6, 0, 0},
		{9, 4, 6}, // beyond the log: from its end
		{3, 1, 2},
	}
	for i, tt := range tests {
		if got := FindConflictByTerm(log, tt.index, tt.term); got != tt.want {
			t.Errorf("#%d FindConflictByTerm(%d, %d) = %d, want %d", i, tt.index, tt.term, got, tt.want)
		}
	}
}

func TestVoteDecision(t *testing.T) {
	log := terms{1, 2}
	tests := []struct {
		vote, lead, from string
		pre              bool
		reqTerm, ourTerm uint64
		lastIdx, lastT   uint64
		want             bool
	}{
		{"", "", "a", false, 3, 3, 2, 2, true},   // free to vote, up to date
		{"a", "", "a", false, 3, 3, 2, 2, true},  // same candidate again
		{"b", "", "a", false, 3, 3, 2, 2, false}, // voted for another this term
		{"", "m", "a", false, 3, 3, 2, 2, false}, // a master is known this term
		{"", "", "a", false, 3, 3, 1, 2, false},  // candidate's log is behind
		{"b", "m", "a", true, 4, 3, 2, 2, true},  // pre-vote for a later term ignores vote and master
		{"b", "m", "a", true, 3, 3, 2, 2, false}, // pre-vote for our own term does not
		{"", "", "a", true, 4, 3, 1, 1, false},   // pre-vote still needs the up-to-date log
	}
	for i, tt := range tests {
		got := VoteDecision(log, tt.vote, tt.lead, tt.from, tt.pre, tt.reqTerm, tt.ourTerm, tt.lastIdx, tt.lastT)
		if got != tt.want {
			t.Errorf("#%d VoteDecision = %v, want %v", i, got, tt.want)
		}
	}
}
