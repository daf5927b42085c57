// Package replica is replog's protocol core: a deterministic Raft state
// machine with replog's write concern on top. It owns no goroutine, clock,
// socket or file. The runtime (pkg/node) feeds it events — Tick, Step (a
// message from a peer), Propose, Persisted — and collects a Ready: what to
// persist, what to send now and what to send only once persisted. The
// role-specific rules live in master/ (leader) and sentinel/ (follower,
// candidate); this package holds the shared state and dispatches to them.
//
// Reference: Ongaro & Ousterhout, "In Search of an Understandable Consensus
// Algorithm" (2014) and Ongaro's thesis (2014) for PreVote, CheckQuorum and
// leadership transfer.
package replica

import (
	"errors"
	"fmt"

	"github.com/replog/replog/master"
	"github.com/replog/replog/pkg/protocol"
	"github.com/replog/replog/sentinel"
)

// Role is a node's part in its current term.
type Role uint8

const (
	Follower Role = iota
	PreCandidate
	Candidate
	Leader
)

// String gives the role as /status names it.
func (r Role) String() string {
	switch r {
	case Leader:
		return "master"
	case Candidate, PreCandidate:
		return "candidate"
	}
	return "sentinel"
}

// Errors Propose returns.
var (
	// ErrNotLeader: only the master appends.
	ErrNotLeader = errors.New("replica: not the master")
	// ErrNoQuorum: the master has not heard from a majority within an
	// election timeout; it refuses writes it could not commit.
	ErrNoQuorum = errors.New("replica: master cannot reach a majority")
	// ErrTransferring: leadership is being handed over.
	ErrTransferring = errors.New("replica: leadership transfer in progress")
	// ErrChangePending: a membership change is still uncommitted, or this
	// master has not yet committed an entry of its own term (Raft's rule
	// for safe single-server changes); try again shortly.
	ErrChangePending = errors.New("replica: a membership change is in progress")
	// ErrNoLiveMajority: after the change, the voters this master has heard
	// from recently would not be a majority; the cluster would stall.
	ErrNoLiveMajority = errors.New("replica: the new membership would have no live majority")
)

// Rand is the source of randomness for election timeouts. The runtime passes
// a seeded generator, the simulator its own: nothing here is global.
type Rand interface{ IntN(n int) int }

// IndexedConfig is a membership entry found in the log.
type IndexedConfig struct {
	Index  uint64
	Config protocol.Config
}

// Config sets up a Replica.
type Config struct {
	// ID is this node's id.
	ID      string
	Storage Storage
	// HardState is the persisted term, vote and commit hint.
	HardState protocol.HardState
	// Configs are the membership entries of the stored log, in index order.
	Configs []IndexedConfig
	// LastMsgID is the MsgID of the stored log's last entry.
	LastMsgID uint64
	// Bootstrap, when the log and hard state are empty, makes this node the
	// master of term 1 with this membership (ROLE=master at first start).
	Bootstrap *protocol.Config
	// HeartbeatTicks is the number of Tick calls between heartbeats.
	HeartbeatTicks int
	// ElectionTicks is the minimum election timeout, in ticks; the timeout
	// is drawn at random from [ElectionTicks, ElectionTicksMax).
	ElectionTicks    int
	ElectionTicksMax int
	// MaxMissedHeartbeats marks a follower Unhealthy.
	MaxMissedHeartbeats int
	// MaxMsgBytes bounds the entries in one append message.
	MaxMsgBytes int
	// MaxInflight bounds the appends in flight to one follower.
	MaxInflight int
	// MaxInflightBytes bounds the bytes of entries in flight to one
	// follower (0: 8 MiB; negative: no bound). It is what keeps streaming a
	// large log to a new member from stalling the master: each answer lets
	// about MaxMsgBytes more go out.
	MaxInflightBytes int
	Rand             Rand
	// Bugs plants known protocol bugs. Only the simulator's self-test sets
	// it, to prove the simulator catches them; production leaves it zero.
	Bugs Bugs
}

// Bugs are deliberate protocol violations for testing the tests.
type Bugs struct {
	// VoteWithoutLogCheck grants votes without the up-to-date check (§5.4.1).
	VoteWithoutLogCheck bool
	// CommitPriorTerm counts replicas of earlier terms' entries (§5.4.2).
	CommitPriorTerm bool
	// AckBeforePersist lets a follower acknowledge appends before they are
	// durable (thesis §3.8).
	AckBeforePersist bool
	// ReadWithoutQuorum answers reads from the master's commit index without
	// confirming leadership first (thesis §6.4).
	ReadWithoutQuorum bool
}

// Ready is the work the runtime must do after a batch of events.
type Ready struct {
	// HardState must be persisted (before AfterPersist is sent) when
	// MustSaveHardState is set.
	HardState         protocol.HardState
	MustSaveHardState bool
	// Entries must be appended to storage, truncating any stored suffix from
	// Entries[0].Index on. Their durability is reported back with Persisted.
	Entries []protocol.Entry
	// Messages may be sent at once (the master's appends and heartbeats).
	Messages []protocol.Message
	// AfterPersist may be sent only once HardState and Entries (of this and
	// every earlier Ready) are durable: responses and votes (thesis §3.8).
	AfterPersist []protocol.Message
	// ReadStates answer ReadIndex calls: a linearizable read with that
	// Context may be served once this node's log is committed and durable up
	// to Index.
	ReadStates []ReadState
}

// ReadState is the answer to a ReadIndex call.
type ReadState struct {
	Context uint64
	Index   uint64
}

// IsEmpty reports whether there is nothing to do.
func (rd *Ready) IsEmpty() bool {
	return !rd.MustSaveHardState && len(rd.Entries) == 0 && len(rd.Messages) == 0 && len(rd.AfterPersist) == 0 && len(rd.ReadStates) == 0
}

// Replica is the protocol state of one node. It is not safe for concurrent
// use: one goroutine (the runtime loop, or the simulator) drives it.
type Replica struct {
	id      string
	cfg     Config
	role    Role
	term    uint64
	vote    string
	lead    string
	log     *raftLog
	tick    int64
	savedHS protocol.HardState

	configs []IndexedConfig
	// lastMsgID is the MsgID of the last entry of the log.
	lastMsgID uint64
	// persisted is the highest index known durable locally.
	persisted uint64

	electionElapsed   int
	heartbeatElapsed  int
	randomizedTimeout int
	votes             map[string]bool

	prs            map[string]*master.Progress
	leadTransferee string
	pendingSend    bool
	// bootstrapping holds every message back until the bootstrap entry is
	// durable.
	bootstrapping bool
	// leaving is set on a master that proposed its own removal.
	leaving bool

	msgs         []protocol.Message
	afterPersist []protocol.Message

	reads      master.ReadIndexQueue
	readsEarly []protocol.Message // reads that arrived before this term's first commit
	readStates []ReadState
}

// New builds a replica from its persisted state.
func New(c Config) *Replica {
	if c.HeartbeatTicks < 1 || c.ElectionTicks <= c.HeartbeatTicks || c.ElectionTicksMax <= c.ElectionTicks {
		panic(fmt.Sprintf("replica: bad ticks heartbeat=%d election=[%d,%d)", c.HeartbeatTicks, c.ElectionTicks, c.ElectionTicksMax))
	}
	if c.MaxMsgBytes <= 0 {
		c.MaxMsgBytes = 1 << 20
	}
	if c.MaxInflight <= 0 {
		c.MaxInflight = 256
	}
	if c.MaxInflightBytes == 0 {
		c.MaxInflightBytes = 8 << 20
	}
	if c.MaxMissedHeartbeats <= 0 {
		c.MaxMissedHeartbeats = 3
	}
	r := &Replica{
		id:        c.ID,
		cfg:       c,
		term:      c.HardState.Term,
		vote:      c.HardState.Vote,
		log:       newLog(c.Storage, c.HardState.Commit),
		configs:   append([]IndexedConfig(nil), c.Configs...),
		lastMsgID: c.LastMsgID,
		savedHS:   c.HardState,
	}
	r.persisted = r.log.lastIndex()
	r.becomeFollower(r.term, protocol.None)
	if c.Bootstrap != nil && r.log.lastIndex() == 0 && c.HardState.IsEmpty() {
		r.bootstrap(*c.Bootstrap)
	}
	return r
}

// bootstrap makes this node master of term 1 and writes the initial
// membership as entry 1: a cluster that starts this way needs no election.
func (r *Replica) bootstrap(cc protocol.Config) {
	r.term = 1
	r.vote = r.id
	r.role = Candidate // legal path into Leader
	// Nothing this master says may be seen before its term and first entry
	// are durable here: a master that crashed before its first fsync
	// bootstraps again on restart (its data is empty) and must not meet
	// followers holding other entries of "its" term 1.
	r.bootstrapping = true
	r.becomeLeaderWith(protocol.Entry{Type: protocol.EntryConfig, Data: protocol.EncodeConfig(cc)})
}

// ---- queries -------------------------------------------------------------

func (r *Replica) ID() string             { return r.id }
func (r *Replica) Role() Role             { return r.role }
func (r *Replica) Term() uint64           { return r.term }
func (r *Replica) Leader() string         { return r.lead }
func (r *Replica) Committed() uint64      { return r.log.committed }
func (r *Replica) LastIndex() uint64      { return r.log.lastIndex() }
func (r *Replica) PersistedIndex() uint64 { return r.persisted }
func (r *Replica) LastMsgID() uint64      { return r.lastMsgID }
func (r *Replica) Ticks() int64           { return r.tick }
func (r *Replica) Transferee() string     { return r.leadTransferee }
func (r *Replica) HardState() protocol.HardState {
	return protocol.HardState{Term: r.term, Vote: r.vote, Commit: r.log.committed}
}

// Membership is the latest membership in the log (empty before the first
// config entry arrives).
func (r *Replica) Membership() protocol.Config {
	if n := len(r.configs); n > 0 {
		return r.configs[n-1].Config
	}
	return protocol.Config{}
}

// Voters is the number of voting members.
func (r *Replica) Voters() int { return len(r.Membership().Voters()) }

// IsLearner reports whether this node is a member without a vote.
func (r *Replica) IsLearner() bool {
	m, ok := r.Membership().Member(r.id)
	return ok && !m.Voter
}

// Progress returns the master's view of a follower (nil when not master).
func (r *Replica) Progress(id string) *master.Progress {
	if r.role != Leader {
		return nil
	}
	return r.prs[id]
}

// matches returns each voter's durable match index, this node included.
func (r *Replica) matches() []uint64 {
	voters := r.Membership().Voters()
	out := make([]uint64, 0, len(voters))
	for _, id := range voters {
		if id == r.id {
			out = append(out, r.persisted)
		} else if pr := r.prs[id]; pr != nil {
			out = append(out, pr.Match)
		} else {
			out = append(out, 0)
		}
	}
	return out
}

// AckIndex is the highest index whose write concern w is met: held durably
// by at least w voters (the master included) and, for w of a majority or
// more, committed — so a write acknowledged with a majority is always in
// every later read index. Valid on the master only; 0 elsewhere.
func (r *Replica) AckIndex(w int) uint64 {
	if r.role != Leader {
		return 0
	}
	ack := master.AckIndex(r.matches(), w)
	if w >= master.Majority(r.Voters()) {
		ack = min(ack, r.log.committed)
	}
	return ack
}

// Acks is how many voters hold index durably (on the master).
func (r *Replica) Acks(index uint64) int {
	if r.role != Leader {
		return 0
	}
	return master.CountAtLeast(r.matches(), index)
}

// Health classifies a follower as the master sees it.
func (r *Replica) Health(id string) master.Health {
	pr := r.prs[id]
	if r.role != Leader || pr == nil {
		return ""
	}
	return master.HealthOf(r.tick-pr.HeardTick, r.cfg.HeartbeatTicks, r.cfg.MaxMissedHeartbeats)
}

// QuorumActive reports whether the master heard from a majority of voters
// within the last election timeout.
func (r *Replica) QuorumActive() bool {
	if r.role != Leader {
		return false
	}
	voters := r.Membership().Voters()
	n := 0
	for _, id := range voters {
		if id == r.id {
			n++
		} else if pr := r.prs[id]; pr != nil && r.tick-pr.HeardTick <= int64(r.cfg.ElectionTicks) {
			n++
		}
	}
	return n >= master.Majority(len(voters))
}

// LogTerm is the term of the entry at index i, if the log holds it.
func (r *Replica) LogTerm(i uint64) (uint64, bool) { return r.log.Term(i) }

// Entries reads [lo, hi) of the log, including the unstable tail.
func (r *Replica) Entries(lo, hi uint64, maxBytes int) ([]protocol.Entry, error) {
	return r.log.entries(lo, hi, maxBytes)
}

// ---- events --------------------------------------------------------------

// Tick advances logical time by one tick.
func (r *Replica) Tick() {
	r.tick++
	if r.role == Leader {
		r.tickLeader()
	} else {
		r.tickElection()
	}
}

// Persisted reports that the log is durable up to index, whose entry had
// term (an entry since replaced does not count).
func (r *Replica) Persisted(index, term uint64) {
	if t, ok := r.log.Term(index); !ok || t != term {
		return
	}
	r.log.stableTo(index, term)
	r.bootstrapping = false
	if index > r.persisted {
		r.persisted = index
	}
	if r.role == Leader {
		r.maybeCommit()
	}
}

// Propose appends a client message on the master. It returns the entry's
// log index and message id. now is the wall-clock timestamp (Unix
// nanoseconds) the runtime assigns; it is data to the core.
func (r *Replica) Propose(data []byte, key string, now int64) (index, msgID uint64, err error) {
	switch {
	case r.role != Leader:
		return 0, 0, ErrNotLeader
	case r.leadTransferee != protocol.None, r.leaving:
		return 0, 0, ErrTransferring
	case !r.QuorumActive():
		return 0, 0, ErrNoQuorum
	}
	e := protocol.Entry{Type: protocol.EntryNormal, Time: now, Key: key, Data: data}
	r.appendEntry(e)
	return r.log.lastIndex(), r.lastMsgID, nil
}

// Ready collects the work produced since the last call.
func (r *Replica) Ready() Ready {
	if r.pendingSend && r.role == Leader {
		r.pendingSend = false
		r.bcastAppend()
	}
	rd := Ready{
		Entries:      r.log.toHand(),
		Messages:     r.msgs,
		AfterPersist: r.afterPersist,
		ReadStates:   r.readStates,
	}
	r.readStates = nil
	if hs := r.HardState(); hs.Term != r.savedHS.Term || hs.Vote != r.savedHS.Vote || (hs.Commit != r.savedHS.Commit && len(rd.Entries) > 0) {
		rd.HardState, rd.MustSaveHardState = hs, true
		r.savedHS = hs
	}
	r.msgs, r.afterPersist = nil, nil
	return rd
}

// Step handles a message from a peer.
func (r *Replica) Step(m protocol.Message) {
	switch {
	case m.Term > r.term:
		if (m.Type == protocol.MsgVote || m.Type == protocol.MsgPreVote) && r.inLease() && m.Context != contextTransfer {
			// A master was heard from within the minimum election timeout:
			// a disruptive candidate (one that was cut off) is ignored.
			return
		}
		switch {
		case m.Type == protocol.MsgPreVote:
			// A pre-vote never changes our term.
		case m.Type == protocol.MsgPreVoteResp && !m.Reject:
			// A granted pre-vote carries the term we would campaign in.
		default:
			lead := protocol.None
			if m.Type == protocol.MsgApp || m.Type == protocol.MsgHeartbeat {
				lead = m.From
			}
			r.becomeFollower(m.Term, lead)
		}
	case m.Term < r.term:
		switch m.Type {
		case protocol.MsgApp, protocol.MsgHeartbeat:
			// A deposed master: tell it the current term so it steps down.
			r.send(protocol.Message{To: m.From, Type: protocol.MsgAppResp})
		case protocol.MsgPreVote:
			r.send(protocol.Message{To: m.From, Type: protocol.MsgPreVoteResp, Reject: true})
		}
		return
	}

	switch m.Type {
	case protocol.MsgVote, protocol.MsgPreVote:
		r.handleVote(m)
		return
	}
	switch r.role {
	case Leader:
		r.stepLeader(m)
	case Candidate, PreCandidate:
		r.stepCandidate(m)
	default:
		r.stepFollower(m)
	}
}

// ProposeConfChange proposes the membership next, which must differ from
// the current one in exactly one member (master.CheckChange). Like every
// membership entry it takes effect on every node as soon as it is in the
// log; the caller waits for its commit. Returns the entry's index.
func (r *Replica) ProposeConfChange(next protocol.Config) (uint64, error) {
	switch {
	case r.role != Leader:
		return 0, ErrNotLeader
	case r.leadTransferee != protocol.None:
		return 0, ErrTransferring
	case r.pendingConf():
		return 0, ErrChangePending
	}
	if t, _ := r.log.Term(r.log.committed); t != r.term {
		return 0, ErrChangePending
	}
	if _, err := master.CheckChange(r.Membership(), next); err != nil {
		return 0, err
	}
	if !r.liveMajority(next) {
		return 0, ErrNoLiveMajority
	}
	r.appendEntry(protocol.Entry{Type: protocol.EntryConfig, Data: protocol.EncodeConfig(next)})
	if !next.IsVoter(r.id) {
		// Leaving: take no more writes, so that every write this master
		// acknowledges is committed by the time its removal is, and it can
		// answer them all before it steps down.
		r.leaving = true
	}
	return r.log.lastIndex(), nil
}

// pendingConf reports whether the latest membership entry is uncommitted.
func (r *Replica) pendingConf() bool {
	n := len(r.configs)
	return n > 0 && r.configs[n-1].Index > r.log.committed
}

// liveMajority reports whether a majority of next's voters are this node or
// followers heard from within an election timeout.
func (r *Replica) liveMajority(next protocol.Config) bool {
	voters := next.Voters()
	n := 0
	for _, id := range voters {
		pr := r.prs[id]
		if id == r.id || (pr != nil && pr.RecentActive && r.tick-pr.HeardTick <= int64(r.cfg.ElectionTicks)) {
			n++
		}
	}
	return n >= master.Majority(len(voters))
}

// maybePromote makes a learner that has caught up a voter (one at a time).
func (r *Replica) maybePromote() {
	if r.pendingConf() {
		return
	}
	cur := r.Membership()
	for _, m := range cur.Members {
		pr := r.prs[m.ID]
		if m.Voter || pr == nil || pr.Match == 0 || pr.Match < r.log.committed {
			continue
		}
		next := protocol.Config{Members: append([]protocol.Member(nil), cur.Members...)}
		for i := range next.Members {
			if next.Members[i].ID == m.ID {
				next.Members[i].Voter = true
			}
		}
		if _, err := r.ProposeConfChange(next); err == nil {
			return
		}
	}
}

// maybeStepDownRemoved: a master whose removal is committed hands over to
// the most up-to-date voter and steps down.
func (r *Replica) maybeStepDownRemoved() {
	n := len(r.configs)
	if r.role != Leader || n == 0 || r.configs[n-1].Index > r.log.committed || r.Membership().IsVoter(r.id) {
		return
	}
	var best string
	var bestMatch uint64
	for _, id := range r.Membership().Voters() {
		if pr := r.prs[id]; pr != nil && (best == protocol.None || pr.Match > bestMatch) {
			best, bestMatch = id, pr.Match
		}
	}
	if best != protocol.None && bestMatch == r.log.lastIndex() {
		r.send(protocol.Message{To: best, Type: protocol.MsgTimeoutNow})
	}
	r.becomeFollower(r.term, protocol.None)
}

// ForceReconfigure is disaster recovery, run by an operator on a survivor
// when a majority is gone for good: this node starts a new term as master of
// a membership made of keep (which must include it), without asking
// anyone. Entries only the lost nodes held are lost; the lost nodes must
// never come back with their old data.
func (r *Replica) ForceReconfigure(keep []string) error {
	cur := r.Membership()
	var next protocol.Config
	self := false
	for _, id := range keep {
		m, ok := cur.Member(id)
		if !ok {
			return fmt.Errorf("replica: %q is not a member", id)
		}
		m.Voter = true
		next.Members = append(next.Members, m)
		self = self || id == r.id
	}
	if !self {
		return fmt.Errorf("replica: the new membership must include this node (%s)", r.id)
	}
	r.becomeFollower(r.term+1, protocol.None)
	r.vote = r.id
	r.role = Candidate // the legal path into Leader
	r.becomeLeaderWith(protocol.Entry{Type: protocol.EntryConfig, Data: protocol.EncodeConfig(next)})
	return nil
}

// ReadIndex asks for a read index for a linearizable read identified by
// ctx (non-zero, unique on this node). The answer comes in a later Ready's
// ReadStates; none comes if leadership changes meanwhile, so the caller
// bounds its wait and asks again. Reference: Raft thesis §6.4.
func (r *Replica) ReadIndex(ctx uint64) {
	switch {
	case r.role == Leader:
		r.handleReadIndex(protocol.Message{From: r.id, Context: ctx})
	case r.lead != protocol.None:
		r.send(protocol.Message{To: r.lead, Type: protocol.MsgReadIndex, Context: ctx})
	}
}

// handleReadIndex starts a heartbeat round for a read (thesis §6.4): the
// read index is the commit index now, valid once a majority confirms this
// node is still master. Before this term's first entry commits, the commit
// index may lag what earlier masters committed, so reads wait for it.
func (r *Replica) handleReadIndex(m protocol.Message) {
	if t, _ := r.log.Term(r.log.committed); t != r.term {
		r.readsEarly = append(r.readsEarly, m)
		return
	}
	if r.Voters() == 1 || r.cfg.Bugs.ReadWithoutQuorum {
		r.answerRead(m.From, m.Context, r.log.committed)
		return
	}
	seq := r.reads.Add(r.log.committed, m.From, m.Context)
	r.reads.Ack(r.id, seq)
	r.bcastHeartbeat()
}

func (r *Replica) answerRead(from string, ctx, index uint64) {
	if from == r.id {
		r.readStates = append(r.readStates, ReadState{Context: ctx, Index: index})
		return
	}
	r.send(protocol.Message{To: from, Type: protocol.MsgReadIndexResp, Index: index, Context: ctx})
}

// releaseReads answers the reads a majority has confirmed.
func (r *Replica) releaseReads() {
	voters := r.Membership()
	for _, rr := range r.reads.Release(func(acks map[string]bool) bool {
		n := 0
		for _, id := range voters.Voters() {
			if acks[id] {
				n++
			}
		}
		return n >= master.Majority(len(voters.Voters()))
	}) {
		r.answerRead(rr.From, rr.Context, rr.Index)
	}
}

// TransferLeadership asks the master to hand over to the given voter (or to
// the most up-to-date one when to is empty). It returns the chosen target.
func (r *Replica) TransferLeadership(to string) string {
	if r.role != Leader {
		return protocol.None
	}
	if to == protocol.None {
		var best uint64
		for _, id := range r.Membership().Voters() {
			if pr := r.prs[id]; id != r.id && pr != nil && (to == protocol.None || pr.Match > best) {
				to, best = id, pr.Match
			}
		}
	}
	if to == protocol.None || to == r.id || !r.Membership().IsVoter(to) {
		return protocol.None
	}
	r.leadTransferee = to
	r.electionElapsed = 0
	if pr := r.prs[to]; pr.Match == r.log.lastIndex() {
		r.send(protocol.Message{To: to, Type: protocol.MsgTimeoutNow})
	} else {
		r.sendAppend(to)
	}
	return to
}

// contextTransfer marks a vote request of a leadership transfer, which a
// follower grants even inside the master's lease.
const contextTransfer = 1

// ---- roles ---------------------------------------------------------------

func (r *Replica) reset(term uint64) {
	if r.term != term {
		r.term = term
		r.vote = protocol.None
	}
	r.lead = protocol.None
	r.electionElapsed = 0
	r.heartbeatElapsed = 0
	r.randomizedTimeout = r.cfg.ElectionTicks + r.cfg.Rand.IntN(r.cfg.ElectionTicksMax-r.cfg.ElectionTicks)
	r.votes = nil
	r.prs = nil
	r.leadTransferee = protocol.None
	r.pendingSend = false
	r.reads.Reset()
	r.readsEarly = nil
	r.leaving = false
}

// quorumFormed reports whether this master has heard from a majority of
// voters (itself included) at least once in its term.
func (r *Replica) quorumFormed() bool {
	voters := r.Membership().Voters()
	n := 0
	for _, id := range voters {
		if pr := r.prs[id]; id == r.id || (pr != nil && pr.RecentActive) {
			n++
		}
	}
	return n >= master.Majority(len(voters))
}

func (r *Replica) becomeFollower(term uint64, lead string) {
	r.reset(term)
	r.role = Follower
	r.lead = lead
}

func (r *Replica) becomePreCandidate() {
	if r.role == Leader {
		panic("replica: master cannot become pre-candidate")
	}
	// Term and vote stay: a pre-vote promises nothing.
	r.role = PreCandidate
	r.lead = protocol.None
	r.votes = map[string]bool{}
	r.electionElapsed = 0
}

func (r *Replica) becomeCandidate() {
	if r.role == Leader {
		panic("replica: master cannot become candidate")
	}
	r.reset(r.term + 1)
	r.vote = r.id
	r.role = Candidate
	r.votes = map[string]bool{}
}

func (r *Replica) becomeLeader() {
	// A new master commits an empty entry of its own term first (Raft §8):
	// entries of earlier terms are committed only through it.
	r.becomeLeaderWith(protocol.Entry{Type: protocol.EntryNoop})
}

func (r *Replica) becomeLeaderWith(first protocol.Entry) {
	if r.role == Follower {
		panic("replica: follower cannot become master")
	}
	term := r.term
	r.reset(term)
	r.role = Leader
	r.lead = r.id
	r.prs = map[string]*master.Progress{}
	// Progress of every member starts optimistically just after our last
	// entry, so the first append carries the new entry; appendEntry adds
	// progress for members a bootstrap membership introduces.
	r.syncProgress(r.log.lastIndex() + 1)
	r.appendEntry(first)
	r.bcastAppend()
}

// syncProgress makes prs hold exactly the members other than this node;
// a member new to prs starts probing at next.
func (r *Replica) syncProgress(next uint64) {
	if r.role != Leader {
		return
	}
	members := map[string]bool{}
	for _, m := range r.Membership().Members {
		if m.ID == r.id {
			continue
		}
		members[m.ID] = true
		if r.prs[m.ID] == nil {
			r.prs[m.ID] = master.NewProgress(next, r.cfg.MaxInflight, r.cfg.MaxInflightBytes, r.tick)
		}
	}
	for id := range r.prs {
		if !members[id] {
			delete(r.prs, id)
		}
	}
}

// promotable reports whether this node may campaign: it is a voter of the
// membership it knows.
func (r *Replica) promotable() bool { return r.Membership().IsVoter(r.id) }

func (r *Replica) inLease() bool {
	return r.lead != protocol.None && r.electionElapsed < r.cfg.ElectionTicks
}

// ---- ticks ---------------------------------------------------------------

func (r *Replica) tickElection() {
	r.electionElapsed++
	if r.promotable() && r.electionElapsed >= r.randomizedTimeout {
		r.electionElapsed = 0
		r.campaign(true, false)
	}
}

func (r *Replica) tickLeader() {
	r.heartbeatElapsed++
	r.electionElapsed++
	if r.electionElapsed >= r.cfg.ElectionTicks {
		r.electionElapsed = 0
		// CheckQuorum: a master that has not heard from a majority within an
		// election timeout steps down, so an isolated master never keeps
		// accepting writes. The exception is the master that bootstrapped
		// the cluster and has not yet heard from a majority at all (its
		// sentinels are still starting): nobody else can be master then,
		// and it refuses writes (ErrNoQuorum) until they answer.
		if !r.QuorumActive() && (r.quorumFormed() || r.term > 1) {
			r.becomeFollower(r.term, protocol.None)
			return
		}
		if r.leadTransferee != protocol.None {
			// The transfer did not finish within an election timeout.
			r.leadTransferee = protocol.None
		}
	}
	if r.heartbeatElapsed >= r.cfg.HeartbeatTicks {
		r.heartbeatElapsed = 0
		r.bcastHeartbeat()
		r.maybePromote()
	}
}

// ---- elections -----------------------------------------------------------

func (r *Replica) campaign(pre, transfer bool) {
	if !r.promotable() {
		return
	}
	var typ protocol.MessageType
	var term uint64
	if pre {
		r.becomePreCandidate()
		typ, term = protocol.MsgPreVote, r.term+1
	} else {
		r.becomeCandidate()
		typ, term = protocol.MsgVote, r.term
	}
	if r.tally(r.id, true) {
		// A one-voter cluster wins at once.
		r.winElection(pre)
		return
	}
	var ctx uint64
	if transfer {
		ctx = contextTransfer
	}
	for _, id := range r.Membership().Voters() {
		if id == r.id {
			continue
		}
		m := protocol.Message{
			Type: typ, From: r.id, To: id, Term: term,
			Index: r.log.lastIndex(), LogTerm: r.log.lastTerm(), Context: ctx,
		}
		if pre {
			// A pre-vote changes no state: it need not wait for a fsync,
			// and every millisecond here widens the window for a split vote.
			r.msgs = append(r.msgs, m)
		} else {
			r.afterPersist = append(r.afterPersist, m)
		}
	}
}

func (r *Replica) winElection(pre bool) {
	if pre {
		r.campaign(false, false)
	} else {
		r.becomeLeader()
	}
}

// tally records a vote and reports whether the election is won.
func (r *Replica) tally(from string, granted bool) (won bool) {
	if _, seen := r.votes[from]; !seen {
		r.votes[from] = granted
	}
	n := 0
	for _, g := range r.votes {
		if g {
			n++
		}
	}
	return n >= master.Majority(r.Voters())
}

func (r *Replica) lost() bool {
	n := 0
	for _, g := range r.votes {
		if !g {
			n++
		}
	}
	return n >= master.Majority(r.Voters())
}

func (r *Replica) handleVote(m protocol.Message) {
	pre := m.Type == protocol.MsgPreVote
	respType := protocol.MsgVoteResp
	if pre {
		respType = protocol.MsgPreVoteResp
	}
	grant := sentinel.VoteDecision(r.log, r.vote, r.lead, m.From, pre, m.Term, r.term, m.Index, m.LogTerm)
	if r.cfg.Bugs.VoteWithoutLogCheck {
		grant = r.vote == m.From || (r.vote == protocol.None && r.lead == protocol.None) || (pre && m.Term > r.term)
	}
	if grant {
		// A granted pre-vote answers in the term asked about; a vote is in
		// our (now equal) term.
		r.send(protocol.Message{To: m.From, Type: respType, Term: m.Term})
		if !pre {
			r.electionElapsed = 0
			r.vote = m.From
		}
		return
	}
	r.send(protocol.Message{To: m.From, Type: respType, Term: r.term, Reject: true})
}

func (r *Replica) stepCandidate(m protocol.Message) {
	switch m.Type {
	case protocol.MsgApp, protocol.MsgHeartbeat:
		// A master of our term exists.
		r.becomeFollower(m.Term, m.From)
		r.stepFollower(m)
	case protocol.MsgVoteResp, protocol.MsgPreVoteResp:
		if (m.Type == protocol.MsgPreVoteResp) != (r.role == PreCandidate) {
			return
		}
		if r.tally(m.From, !m.Reject) {
			r.winElection(r.role == PreCandidate)
		} else if r.lost() {
			r.becomeFollower(r.term, protocol.None)
		}
	}
}

func (r *Replica) stepFollower(m protocol.Message) {
	switch m.Type {
	case protocol.MsgApp:
		r.electionElapsed = 0
		r.lead = m.From
		r.handleAppend(m)
	case protocol.MsgHeartbeat:
		r.electionElapsed = 0
		r.lead = m.From
		// The master sends min(our match, its commit): safe to adopt.
		if m.Commit > r.log.committed && m.Commit <= r.log.lastIndex() {
			r.log.commitTo(m.Commit)
		}
		r.send(protocol.Message{To: m.From, Type: protocol.MsgHeartbeatResp, Context: m.Context})
	case protocol.MsgTimeoutNow:
		// Leadership transfer: campaign at once, skipping PreVote.
		r.campaign(false, true)
	case protocol.MsgReadIndexResp:
		r.readStates = append(r.readStates, ReadState{Context: m.Context, Index: m.Index})
	}
}

// handleAppend is the follower's side of replication (Raft §5.3).
func (r *Replica) handleAppend(m protocol.Message) {
	if m.Index < r.log.committed {
		// The append starts inside what this node knows is committed, and
		// so in the master's log too (§5.4): skip that part and take the
		// rest. (Answering with the commit index alone, as etcd does,
		// costs a round trip whenever a master re-sends from an older
		// point, e.g. while probing a member whose acknowledgement is
		// still on its way.)
		skip := r.log.committed - m.Index
		if uint64(len(m.Entries)) <= skip {
			r.send(protocol.Message{To: m.From, Type: protocol.MsgAppResp, Index: r.log.committed})
			return
		}
		m.Index, m.LogTerm = r.log.committed, m.Entries[skip-1].Term
		m.Entries = m.Entries[skip:]
	}
	if !sentinel.MatchTerm(r.log, m.Index, m.LogTerm) {
		hint := sentinel.FindConflictByTerm(r.log, min(m.Index, r.log.lastIndex()), m.LogTerm)
		r.send(protocol.Message{
			To: m.From, Type: protocol.MsgAppResp, Index: m.Index, Reject: true,
			RejectHint: hint, LogTerm: r.log.mustTerm(hint),
		})
		return
	}
	lastNew := m.Index + uint64(len(m.Entries))
	if ci := sentinel.FindConflict(r.log, m.Entries); ci != 0 {
		if ci <= r.log.committed {
			panic(fmt.Sprintf("replica: entry %d conflicts with committed %d", ci, r.log.committed))
		}
		r.appendLog(m.Entries[ci-m.Entries[0].Index:])
	}
	if c := min(m.Commit, lastNew); c > r.log.committed {
		r.log.commitTo(c)
	}
	r.send(protocol.Message{To: m.From, Type: protocol.MsgAppResp, Index: lastNew})
}

// ---- master --------------------------------------------------------------

func (r *Replica) stepLeader(m protocol.Message) {
	pr := r.prs[m.From]
	if pr == nil {
		return
	}
	pr.RecentActive = true
	pr.HeardTick = r.tick
	switch m.Type {
	case protocol.MsgAppResp:
		if m.Reject {
			next := r.nextAfterReject(m)
			if pr.MaybeDecrTo(m.Index, next) {
				r.sendAppend(m.From)
			}
			return
		}
		if pr.State == master.Probe {
			pr.ProbeSent = false
		}
		if pr.MaybeUpdate(m.Index) {
			switch pr.State {
			case master.Probe:
				pr.BecomeReplicate()
			case master.Replicate:
				pr.Inflight.FreeLE(m.Index)
			}
			if pr.Match == r.log.lastIndex() {
				pr.CaughtUpTick = r.tick
			}
			if r.maybeCommit() {
				// Tell everyone the new commit index.
				r.pendingSend = true
			}
			if m.From == r.leadTransferee && pr.Match == r.log.lastIndex() {
				r.send(protocol.Message{To: m.From, Type: protocol.MsgTimeoutNow})
			}
		}
		r.maybeSendAppend(m.From)
	case protocol.MsgReadIndex:
		r.handleReadIndex(m)
	case protocol.MsgHeartbeatResp:
		if m.Context != 0 {
			r.reads.Ack(m.From, m.Context)
			r.releaseReads()
		}
		if pr.Match == r.log.lastIndex() {
			pr.CaughtUpTick = r.tick
		}
		pr.ProbeSent = false
		if pr.State == master.Replicate && pr.Inflight.Full() {
			// The follower is alive but the window is stuck: appends (or
			// their answers) were lost. Free one slot so an append goes out;
			// if entries are missing, the follower rejects it and we probe.
			pr.Inflight.FreeFirst()
		}
		if pr.Match < r.log.lastIndex() {
			// Send even an empty append: if what is in flight was lost, the
			// follower rejects it and probing finds where it stands.
			r.sendAppend(m.From)
			r.maybeSendAppend(m.From)
		}
	}
}

// nextAfterReject picks where to probe next from a follower's rejection hint:
// the largest index of ours whose term is at most the follower's term there.
func (r *Replica) nextAfterReject(m protocol.Message) uint64 {
	return sentinel.FindConflictByTerm(r.log, m.RejectHint, m.LogTerm) + 1
}

func (r *Replica) maybeCommit() bool {
	ci := master.AckIndex(r.matches(), master.Majority(r.Voters()))
	// Raft §5.4.2: only an entry of the current term is committed by
	// counting replicas; earlier ones follow it.
	if ci > r.log.committed && (r.log.mustTerm(ci) == r.term || r.cfg.Bugs.CommitPriorTerm) {
		r.log.commitTo(ci)
		defer r.maybeStepDownRemoved()
		if early := r.readsEarly; len(early) > 0 && r.log.mustTerm(ci) == r.term {
			r.readsEarly = nil
			for _, m := range early {
				r.handleReadIndex(m)
			}
		}
		return true
	}
	return false
}

func (r *Replica) bcastAppend() {
	for _, id := range r.sortedPeers() {
		r.maybeSendAppend(id)
	}
}

func (r *Replica) bcastHeartbeat() {
	ctx, _ := r.reads.Pending()
	for _, id := range r.sortedPeers() {
		pr := r.prs[id]
		r.send(protocol.Message{To: id, Type: protocol.MsgHeartbeat, Commit: min(pr.Match, r.log.committed), Context: ctx})
	}
}

// sendAppend sends one append to a follower, even an empty one (to carry
// the commit index).
func (r *Replica) sendAppend(to string) { r.maybeSendAppendEmpty(to, true) }

// maybeSendAppend sends appends while the follower is not paused and there
// are entries it lacks.
func (r *Replica) maybeSendAppend(to string) {
	for r.maybeSendAppendEmpty(to, false) {
	}
}

func (r *Replica) maybeSendAppendEmpty(to string, sendIfEmpty bool) bool {
	pr := r.prs[to]
	if pr == nil || pr.IsPaused() {
		return false
	}
	last := r.log.lastIndex()
	prev := pr.Next - 1
	prevTerm, ok := r.log.Term(prev)
	if !ok {
		// Cannot happen without compaction; probe from the start.
		pr.BecomeProbe()
		pr.Next = 1
		prev, prevTerm = 0, 0
	}
	var ents []protocol.Entry
	if pr.Next <= last {
		var err error
		ents, err = r.log.entries(pr.Next, last+1, r.cfg.MaxMsgBytes)
		if err != nil {
			panic(fmt.Sprintf("replica: read entries [%d,%d): %v", pr.Next, last+1, err))
		}
	}
	if len(ents) == 0 && !sendIfEmpty {
		return false
	}
	r.send(protocol.Message{
		To: to, Type: protocol.MsgApp, Index: prev, LogTerm: prevTerm,
		Entries: ents, Commit: r.log.committed,
	})
	sentLast := prev + uint64(len(ents))
	bytes := 0
	for _, e := range ents {
		bytes += e.Size()
	}
	pr.SentEntries(sentLast, len(ents), bytes)
	return len(ents) > 0 && pr.State == master.Replicate
}

// appendEntry adds an entry of the current term at the end of the master's
// log, assigning its index and message id.
func (r *Replica) appendEntry(e protocol.Entry) {
	e.Term = r.term
	e.Index = r.log.lastIndex() + 1
	if e.Type == protocol.EntryNormal {
		e.MsgID = r.lastMsgID + 1
	} else {
		e.MsgID = r.lastMsgID
	}
	r.appendLog([]protocol.Entry{e})
	r.pendingSend = true
}

// appendLog appends to the log (truncating a conflicting suffix) and keeps
// membership, message ids and the local durable index in step.
func (r *Replica) appendLog(ents []protocol.Entry) {
	first := ents[0].Index
	if first <= r.persisted {
		r.persisted = first - 1
	}
	// Drop memberships that were truncated away.
	for len(r.configs) > 0 && r.configs[len(r.configs)-1].Index >= first {
		r.configs = r.configs[:len(r.configs)-1]
	}
	r.log.append(ents...)
	changed := false
	for _, e := range ents {
		if e.Type == protocol.EntryConfig {
			cc, err := protocol.DecodeConfig(e.Data)
			if err != nil {
				panic(fmt.Sprintf("replica: entry %d: %v", e.Index, err))
			}
			r.configs = append(r.configs, IndexedConfig{Index: e.Index, Config: cc})
			changed = true
		}
	}
	r.lastMsgID = ents[len(ents)-1].MsgID
	if changed {
		// Members added by these entries are sent them, starting with the
		// first of them.
		r.syncProgress(first)
		if r.role == Leader {
			// New voters (or fewer) can make a larger index a majority's.
			r.maybeCommit()
		}
	}
}

func (r *Replica) send(m protocol.Message) {
	m.From = r.id
	if m.Term == 0 {
		m.Term = r.term
	}
	switch {
	case r.bootstrapping:
		r.afterPersist = append(r.afterPersist, m)
	case m.Type == protocol.MsgApp, m.Type == protocol.MsgHeartbeat, m.Type == protocol.MsgTimeoutNow,
		m.Type == protocol.MsgReadIndex, m.Type == protocol.MsgReadIndexResp,
		m.Type == protocol.MsgPreVoteResp && !r.savedHSDirty(),
		m.Type == protocol.MsgAppResp && r.cfg.Bugs.AckBeforePersist:
		r.msgs = append(r.msgs, m)
	default:
		// Responses and votes speak for state that must be durable first.
		r.afterPersist = append(r.afterPersist, m)
	}
}

// savedHSDirty reports whether term or vote changed since the last Ready:
// then even a pre-vote answer waits for the fsync, since it carries the new
// term.
func (r *Replica) savedHSDirty() bool {
	return r.term != r.savedHS.Term || r.vote != r.savedHS.Vote
}

// sortedPeers lists follower ids in a fixed order, so that runs replay
// identically.
func (r *Replica) sortedPeers() []string {
	ids := make([]string, 0, len(r.prs))
	for _, m := range r.Membership().Members {
		if m.ID != r.id && r.prs[m.ID] != nil {
			ids = append(ids, m.ID)
		}
	}
	return ids
}
