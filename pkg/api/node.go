package api

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Node is what the HTTP layer needs from a replog node. pkg/node implements
// it; tests use a fake. Every method is safe for concurrent use.
type Node interface {
	// Insert appends a message on the master and waits for its write concern.
	// On a node that is not the master it returns a *NotLeaderError (the API
	// then forwards the request). Errors it returns: ErrNoLeader,
	// ErrNoQuorum, *NotLeaderError, *OutcomeUnknownError, *BadRequestError,
	// context errors of ctx.
	Insert(ctx context.Context, req InsertRequest) (InsertResult, error)
	// Read calls fn for each message with from <= id, in id order, at most
	// limit of them (0: no limit), streaming from disk. It stops at the first
	// error fn returns and returns it.
	Read(ctx context.Context, req ReadRequest, fn func(Message) error) error
	// Status describes this node.
	Status() Status
	// Voters is the number of voting members (N for writeConcern 1..N).
	Voters() int
}

// MasterWatch is optional for a Node: with it, a request forwarded to a
// master that stops answering (cut off, frozen) gives up soon after this
// node knows of another master, instead of waiting as long as the fault
// lasts.
type MasterWatch interface {
	// OnMasterReplaced calls fn once the node has known of a master other
	// than id for long enough that id would have answered what it holds
	// had it been able to, unless ctx ends first.
	OnMasterReplaced(ctx context.Context, id string, fn func())
}

// InsertRequest is a validated insert.
type InsertRequest struct {
	Message string
	// WriteConcern is 1..N, or 0 with Word set to "majority" or "all".
	WriteConcern int
	Word         string
	Key          string
	// Timeout bounds the wait for the write concern; 0 means the default.
	Timeout time.Duration
}

// InsertResult is the answer to a successful insert.
type InsertResult struct {
	ID           uint64 `json:"id"`
	Term         uint64 `json:"term"`
	Acks         int    `json:"acks"`
	WriteConcern any    `json:"writeConcern"`
	// Duplicate is true when Key matched an earlier insert.
	Duplicate bool `json:"duplicate,omitempty"`
}

// Read concerns.
const (
	ReadLocal        = "local"
	ReadMajority     = "majority"
	ReadLinearizable = "linearizable"
)

// ReadRequest selects messages.
type ReadRequest struct {
	From    uint64 // first id, >= 1
	Limit   uint64 // 0: all
	Concern string // ReadLocal, ReadMajority or ReadLinearizable
}

// Message is one log message as /get-all shows it.
type Message struct {
	ID        uint64    `json:"id"`
	Message   string    `json:"message"`
	Timestamp time.Time `json:"timestamp"`
}

// Status is GET /status.
type Status struct {
	ID        string         `json:"id"`
	Role      string         `json:"role"`
	Term      uint64         `json:"term"`
	Leader    *Peer          `json:"leader"`
	LastID    uint64         `json:"lastId"`
	CommitID  uint64         `json:"commitId"`
	LastIndex uint64         `json:"lastIndex"`
	Commit    uint64         `json:"commitIndex"`
	Members   []MemberStatus `json:"members"`
	ReadOnly  bool           `json:"readOnly"`
}

// Peer names a node and where to reach it.
type Peer struct {
	ID   string `json:"id"`
	HTTP string `json:"http"`
	GRPC string `json:"grpc"`
}

// Health values of a member, as the master sees it.
const (
	Healthy   = "healthy"
	Suspected = "suspected"
	Unhealthy = "unhealthy"
)

// MemberStatus is one member in GET /status.
type MemberStatus struct {
	ID      string `json:"id"`
	HTTP    string `json:"http"`
	GRPC    string `json:"grpc"`
	Voter   bool   `json:"voter"`
	Self    bool   `json:"self,omitempty"`
	Health  string `json:"health,omitempty"`
	MatchID uint64 `json:"matchId"`
	LagMs   int64  `json:"lagMs"`
	// Behind is how many log entries the member lacks (on the master);
	// CatchUpPerSec the rate it has been receiving them and EtaMs the time
	// left at that rate, while it is behind.
	Behind        uint64  `json:"behind"`
	CatchUpPerSec float64 `json:"catchUpPerSec,omitempty"`
	EtaMs         int64   `json:"etaMs,omitempty"`
}

// ErrNoLeader: no master is known right now (an election is under way or the
// cluster has no majority). Nothing was appended. HTTP 503.
var ErrNoLeader = errors.New("api: no master right now")

// ErrNoQuorum: this master cannot reach a majority and is read-only.
// Nothing was appended. HTTP 503.
var ErrNoQuorum = errors.New("api: master cannot reach a majority; read-only")

// NotLeaderError says who the master is, for forwarding.
type NotLeaderError struct {
	LeaderID   string
	LeaderHTTP string
}

func (e *NotLeaderError) Error() string {
	return fmt.Sprintf("api: not the master; master is %s at %s", e.LeaderID, e.LeaderHTTP)
}

// OutcomeUnknownError: the message was appended with ID but its write
// concern was not met in time (Code "timeout") or the master lost its
// leadership while waiting (Code "leadership_lost"). HTTP 504.
type OutcomeUnknownError struct {
	ID   uint64
	Term uint64
	Acks int
	Code string
}

func (e *OutcomeUnknownError) Error() string {
	if e.Code == "leadership_lost" {
		return fmt.Sprintf("api: master lost its leadership while waiting for message %d; it survives only if the new master holds it", e.ID)
	}
	return fmt.Sprintf("api: write concern not met in time for message %d (%d acks); it is in the log and will still replicate", e.ID, e.Acks)
}

// BadRequestError is an insert the node refuses as invalid (for example a
// writeConcern above the number of voters after a membership change). HTTP 400.
type BadRequestError struct {
	Field string
	Msg   string
}

func (e *BadRequestError) Error() string { return e.Msg }
