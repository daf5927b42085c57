// Package sentinel holds the follower's and candidate's rules: whether an
// append matches the local log and where it conflicts, whether a vote may be
// granted, and how a rejection hints the master back fast. It is pure: it
// reads a protocol.LogView and returns answers; the caller acts on them.
package sentinel

import "github.com/replog/replog/pkg/protocol"

// MatchTerm reports whether the log holds index i with term t.
func MatchTerm(log protocol.LogView, i, t uint64) bool {
	got, ok := log.Term(i)
	return ok && got == t
}

// IsUpToDate reports whether a candidate whose last entry is
// (lastIndex, lastTerm) has a log at least as up to date as ours
// (Raft §5.4.1): a later last term wins, and with equal terms the longer log.
func IsUpToDate(log protocol.LogView, lastIndex, lastTerm uint64) bool {
	ourLast := log.LastIndex()
	ourTerm, _ := log.Term(ourLast)
	return lastTerm > ourTerm || (lastTerm == ourTerm && lastIndex >= ourLast)
}

// FindConflict returns the index of the first entry of ents that the log
// does not hold with the same term: either a conflict (the log holds that
// index with another term) or simply new. It returns 0 when the log already
// holds every entry of ents.
func FindConflict(log protocol.LogView, ents []protocol.Entry) uint64 {
	for _, e := range ents {
		if !MatchTerm(log, e.Index, e.Term) {
			return e.Index
		}
	}
	return 0
}

// FindConflictByTerm returns the largest index <= index whose term is <= term
// (or 0). A follower rejecting an append at (index, term) hints this index so
// the master skips, in one round trip, every entry of a term that cannot
// match; the master uses it the same way on its own log.
func FindConflictByTerm(log protocol.LogView, index, term uint64) uint64 {
	if last := log.LastIndex(); index > last {
		index = last
	}
	for index > 0 {
		t, ok := log.Term(index)
		if !ok || t <= term {
			break
		}
		index--
	}
	return index
}

// VoteDecision says whether a vote or pre-vote request may be granted.
//
// vote and lead are this node's vote in its current term and the master it
// knows; a real vote is granted only once per term (to the same candidate
// again, idempotently) and never while a master is known in that term. A
// pre-vote for a later term ignores both: nothing is promised by it.
// In every case the candidate's log must be at least as up to date as ours.
func VoteDecision(log protocol.LogView, vote, lead, from string, preVote bool, reqTerm, ourTerm, lastIndex, lastTerm uint64) bool {
	canVote := vote == from ||
		(vote == protocol.None && lead == protocol.None) ||
		(preVote && reqTerm > ourTerm)
	return canVote && IsUpToDate(log, lastIndex, lastTerm)
}
