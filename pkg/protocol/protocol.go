// Package protocol holds the types every part of replog shares: log entries,
// membership, the persisted hard state and the messages nodes exchange. It is
// the leaf of the dependency graph and imports only the standard library, so
// the deterministic core (master/, sentinel/, pkg/replica) can use it without
// pulling in I/O.
package protocol

import (
	"encoding/json"
	"fmt"
	"strings"
)

// None is the empty node id: no leader known, no vote cast.
const None = ""

// EntryType says what a log entry carries.
type EntryType uint8

const (
	// EntryNormal is a client message. It is the only kind /get-all shows and
	// the only kind that consumes a message id.
	EntryNormal EntryType = iota
	// EntryNoop is the empty entry a new master appends to commit its term.
	EntryNoop
	// EntryConfig carries an encoded Config (cluster membership).
	EntryConfig
)

func (t EntryType) String() string {
	switch t {
	case EntryNormal:
		return "normal"
	case EntryNoop:
		return "noop"
	case EntryConfig:
		return "config"
	}
	return fmt.Sprintf("EntryType(%d)", uint8(t))
}

// Entry is one record of the replicated log.
//
// Invariant: along a log, MsgID is non-decreasing; a Normal entry's MsgID is
// one more than the MsgID of the entry before it, and an internal entry
// (Noop, Config) repeats the MsgID of the entry before it. So message ids are
// 1, 2, 3, ... with no gap, and the first index holding MsgID >= m is the
// Normal entry with id m.
type Entry struct {
	Index uint64
	Term  uint64
	Type  EntryType
	MsgID uint64
	// Time is when the master assigned the id, in Unix nanoseconds.
	Time int64
	// Key is the client's idempotency key, empty when none was given.
	Key  string
	Data []byte
}

// Size is an estimate of the entry's encoded size in bytes, used to bound
// batches.
func (e *Entry) Size() int { return 40 + len(e.Key) + len(e.Data) }

// Member is one node of the cluster.
type Member struct {
	ID    string `json:"id"`
	GRPC  string `json:"grpc"`
	HTTP  string `json:"http,omitempty"`
	Voter bool   `json:"voter"`
}

// Config is the cluster membership. The latest Config in a node's log (even
// uncommitted) is the one it acts on, as in Raft.
type Config struct {
	Members []Member `json:"members"`
}

// Voters returns the ids of the voting members, in config order.
func (c Config) Voters() []string {
	var ids []string
	for _, m := range c.Members {
		if m.Voter {
			ids = append(ids, m.ID)
		}
	}
	return ids
}

// Member returns the member with the given id.
func (c Config) Member(id string) (Member, bool) {
	for _, m := range c.Members {
		if m.ID == id {
			return m, true
		}
	}
	return Member{}, false
}

// IsVoter reports whether id is a voting member.
func (c Config) IsVoter(id string) bool {
	m, ok := c.Member(id)
	return ok && m.Voter
}

// EncodeConfig encodes c for an EntryConfig's Data.
func EncodeConfig(c Config) []byte {
	b, err := json.Marshal(c)
	if err != nil {
		panic(err) // a struct of strings and bools always marshals
	}
	return b
}

// DecodeConfig decodes an EntryConfig's Data.
func DecodeConfig(b []byte) (Config, error) {
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
		return Config{}, fmt.Errorf("protocol: bad config entry: %w", err)
	}
	return c, nil
}

// HardState is what a node must persist before it acts on it: its current
// term and the vote it cast in that term. Commit is persisted as a hint only
// (it can always be relearned from the master).
type HardState struct {
	Term   uint64
	Vote   string
	Commit uint64
}

// IsEmpty reports whether hs is the zero HardState.
func (hs HardState) IsEmpty() bool { return hs == HardState{} }

// MessageType names a message. Requests and responses come in pairs.
type MessageType uint8

const (
	// MsgApp carries entries after (Index, LogTerm) and the sender's commit.
	MsgApp MessageType = iota + 1
	// MsgAppResp answers MsgApp: Index is the follower's last index matching
	// the master's log, or, with Reject, the index that did not match;
	// RejectHint and LogTerm then help the master skip back fast.
	MsgAppResp
	// MsgVote asks for a vote; Index and LogTerm are the candidate's last entry.
	MsgVote
	MsgVoteResp
	// MsgPreVote asks whether a vote would be granted, without changing terms.
	MsgPreVote
	MsgPreVoteResp
	// MsgHeartbeat keeps followers from campaigning and carries the commit index.
	MsgHeartbeat
	MsgHeartbeatResp
	// MsgTimeoutNow tells a follower to campaign at once (leadership transfer).
	MsgTimeoutNow
	// MsgReadIndex asks the master for a read index (linearizable reads on
	// a sentinel); Context identifies the request.
	MsgReadIndex
	// MsgReadIndexResp carries the read index in Index, once the master
	// has confirmed with a majority that it still is the master.
	MsgReadIndexResp
)

var msgNames = map[MessageType]string{
	MsgApp: "App", MsgAppResp: "AppResp", MsgVote: "Vote", MsgVoteResp: "VoteResp",
	MsgPreVote: "PreVote", MsgPreVoteResp: "PreVoteResp", MsgHeartbeat: "Heartbeat",
	MsgHeartbeatResp: "HeartbeatResp", MsgTimeoutNow: "TimeoutNow",
	MsgReadIndex: "ReadIndex", MsgReadIndexResp: "ReadIndexResp",
}

func (t MessageType) String() string {
	if s, ok := msgNames[t]; ok {
		return s
	}
	return fmt.Sprintf("MessageType(%d)", uint8(t))
}

// Message is what one node sends another.
type Message struct {
	Type    MessageType
	From    string
	To      string
	Term    uint64
	LogTerm uint64
	Index   uint64
	Entries []Entry
	Commit  uint64
	Reject  bool
	// RejectHint is the follower's last log index on a rejected MsgAppResp.
	RejectHint uint64
	// Context is an opaque value echoed in responses (ReadIndex rounds).
	Context uint64
}

// Describe renders m for logs and test traces.
func (m Message) Describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s->%s %s term=%d", m.From, m.To, m.Type, m.Term)
	switch m.Type {
	case MsgApp:
		fmt.Fprintf(&b, " prev=%d/%d commit=%d", m.Index, m.LogTerm, m.Commit)
		if n := len(m.Entries); n > 0 {
			fmt.Fprintf(&b, " entries=[%d..%d]", m.Entries[0].Index, m.Entries[n-1].Index)
		}
	case MsgAppResp:
		fmt.Fprintf(&b, " index=%d", m.Index)
		if m.Reject {
			fmt.Fprintf(&b, " reject hint=%d/%d", m.RejectHint, m.LogTerm)
		}
	case MsgVote, MsgPreVote:
		fmt.Fprintf(&b, " last=%d/%d", m.Index, m.LogTerm)
	case MsgVoteResp, MsgPreVoteResp:
		if m.Reject {
			b.WriteString(" rejected")
		} else {
			b.WriteString(" granted")
		}
	case MsgHeartbeat:
		fmt.Fprintf(&b, " commit=%d", m.Commit)
	}
	if m.Context != 0 {
		fmt.Fprintf(&b, " ctx=%d", m.Context)
	}
	return b.String()
}

// LogView is the read-only view of a log that the role rules in master/ and
// sentinel/ need. Term returns false for an index the log does not hold;
// Term(0) is (0, true).
type LogView interface {
	LastIndex() uint64
	Term(i uint64) (uint64, bool)
}
