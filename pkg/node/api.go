package node

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/replog/replog/master"
	"github.com/replog/replog/pkg/api"
	"github.com/replog/replog/pkg/protocol"
	"github.com/replog/replog/pkg/replica"
)

// This file implements api.Node: the HTTP layer's view of the node.

var _ api.Node = (*Node)(nil)

// Voters implements api.Node.
func (n *Node) Voters() int { return int(n.voters.Load()) }

// resolveConcern turns the request's write concern into a voter count.
func (n *Node) resolveConcern(req api.InsertRequest) (int, error) {
	voters := n.Voters()
	switch req.Word {
	case "majority", "":
		if req.WriteConcern > 0 {
			break
		}
		return master.Majority(voters), nil
	case "all":
		return voters, nil
	}
	if req.WriteConcern < 1 || req.WriteConcern > voters {
		return 0, &api.BadRequestError{Field: "write_concern", Msg: fmt.Sprintf(
			"writeConcern must be an integer from 1 to %d, \"majority\" or \"all\"; got %d", voters, req.WriteConcern)}
	}
	return req.WriteConcern, nil
}

// Insert implements api.Node.
func (n *Node) Insert(ctx context.Context, req api.InsertRequest) (api.InsertResult, error) {
	echo := any(req.WriteConcern)
	if req.Word != "" {
		echo = req.Word
	} else if req.WriteConcern == 0 {
		echo = "majority"
	}
	// While there is no master (an election), wait a little over one
	// election for one to appear rather than fail the client at once.
	deadline := time.Now().Add(2 * n.cfg.ElectionTimeoutMax)
	var acc acceptance
	for {
		if err := n.awaitLeadership(ctx, deadline); err != nil {
			return api.InsertResult{}, err
		}
		w, err := n.resolveConcern(req)
		if err != nil {
			return api.InsertResult{}, err
		}
		p := &proposal{data: []byte(req.Message), key: req.Key, w: w, accepted: make(chan acceptance, 1)}
		select {
		case n.propc <- p:
		case <-ctx.Done():
			return api.InsertResult{}, ctx.Err()
		case <-n.stopc:
			return api.InsertResult{}, api.ErrNoLeader
		}
		acc = <-p.accepted
		// Leadership moved between our look and the loop's: look again.
		if !errors.Is(acc.err, replica.ErrNotLeader) && !errors.Is(acc.err, replica.ErrTransferring) {
			break
		}
		if time.Now().After(deadline) {
			return api.InsertResult{}, api.ErrNoLeader
		}
		time.Sleep(5 * time.Millisecond)
	}
	if acc.err != nil {
		return api.InsertResult{}, errorFor(acc.err)
	}
	wt := acc.w
	var timeout <-chan time.Time
	if req.Timeout > 0 {
		t := time.NewTimer(req.Timeout)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case out := <-wt.done:
		out.res.WriteConcern = echo
		return out.res, out.err
	case <-timeout:
		n.cancel(wt)
		return api.InsertResult{}, &api.OutcomeUnknownError{ID: wt.msgID, Term: wt.term, Code: "timeout"}
	case <-ctx.Done():
		n.cancel(wt)
		return api.InsertResult{}, ctx.Err()
	}
}

// awaitLeadership returns nil once this node is master, a *NotLeaderError
// naming the master when another node is, and ErrNoLeader when none
// appears before deadline.
func (n *Node) awaitLeadership(ctx context.Context, deadline time.Time) error {
	for {
		v := n.view.Load()
		if v.role == replica.Leader {
			return nil
		}
		if v.leader != protocol.None && v.leader != n.id {
			if p, ok := n.tr.Peer(v.leader); ok && p.HTTP != "" {
				return &api.NotLeaderError{LeaderID: v.leader, LeaderHTTP: p.HTTP}
			}
			if m, ok := n.membership().Member(v.leader); ok && m.HTTP != "" {
				return &api.NotLeaderError{LeaderID: v.leader, LeaderHTTP: m.HTTP}
			}
		}
		if time.Now().After(deadline) {
			return api.ErrNoLeader
		}
		select {
		case <-time.After(5 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		case <-n.stopc:
			return api.ErrNoLeader
		}
	}
}

func (n *Node) cancel(w *waiter) {
	select {
	case n.cancelc <- w:
	case <-n.stopc:
	}
}

func (n *Node) membership() protocol.Config {
	st := n.Status()
	var cc protocol.Config
	for _, m := range st.Members {
		cc.Members = append(cc.Members, protocol.Member{ID: m.ID, GRPC: m.GRPC, HTTP: m.HTTP, Voter: m.Voter})
	}
	return cc
}

// Read implements api.Node. A read streams from disk up to a bound taken
// when it starts (what is durable here; for majority and linearizable reads
// also committed). Only a local read can meet the truncation of a
// conflicting suffix (a rejoining old master dropping what the new master
// lacks): it then ends where it is, so the answer is still a gap-free prefix
// of the log as it stood when the read began, or starts over if it had sent
// nothing yet.
func (n *Node) Read(ctx context.Context, req api.ReadRequest, fn func(api.Message) error) error {
	var idx uint64
	if req.Concern == api.ReadLinearizable {
		var err error
		if idx, err = n.readIndex(ctx); err != nil {
			return err
		}
	}
	for attempt := 0; ; attempt++ {
		// The generation first: a truncation after this load is seen below.
		gen := n.truncGen.Load()
		bound := n.stable.Load()
		switch req.Concern {
		case api.ReadMajority:
			bound = min(bound, n.commit.Load())
		case api.ReadLinearizable:
			bound = min(bound, n.commit.Load())
			if bound < idx {
				return fmt.Errorf("node: log at %d below read index %d", bound, idx)
			}
		}
		sent, err := n.readTo(ctx, req, bound, gen, fn)
		if !errors.Is(err, errSuffixReplaced) {
			return err
		}
		if sent > 0 || attempt >= 3 {
			return nil
		}
	}
}

// errSuffixReplaced: the log's suffix was truncated while a read ran.
var errSuffixReplaced = errors.New("node: log suffix replaced during the read")

// readTo streams the messages from req.From up to index bound, as long as
// the truncation generation stays gen; it returns how many it sent.
func (n *Node) readTo(ctx context.Context, req api.ReadRequest, bound, gen uint64, fn func(api.Message) error) (uint64, error) {
	replaced := func(err error) error {
		if n.truncGen.Load() != gen {
			return errSuffixReplaced
		}
		return err
	}
	from := max(req.From, 1)
	start, err := n.firstIndexWithMsgID(from, bound)
	if err != nil {
		return 0, replaced(err)
	}
	sent := uint64(0)
	for i := start; i <= bound; {
		if err := ctx.Err(); err != nil {
			return sent, err
		}
		ents, err := n.wal.Entries(i, min(bound+1, i+256), 1<<20)
		if err != nil {
			return sent, replaced(fmt.Errorf("node: read log at %d: %w", i, err))
		}
		// Entries read after a truncation may be the new suffix's.
		if err := replaced(nil); err != nil {
			return sent, err
		}
		for _, e := range ents {
			if e.Type != protocol.EntryNormal || e.MsgID < from {
				continue
			}
			if err := fn(api.Message{ID: e.MsgID, Message: string(e.Data), Timestamp: time.Unix(0, e.Time).UTC()}); err != nil {
				return sent, err
			}
			sent++
			if req.Limit > 0 && sent >= req.Limit {
				return sent, nil
			}
		}
		i += uint64(len(ents))
	}
	return sent, nil
}

// readIndex gets a read index for a linearizable read (a ReadIndex round
// through the master) and waits until this node's log is committed and
// durable up to it. While there is no master it keeps asking for about one
// election, then gives up with ErrNoLeader.
func (n *Node) readIndex(ctx context.Context) (uint64, error) {
	deadline := time.Now().Add(2 * n.cfg.ElectionTimeoutMax)
	for time.Now().Before(deadline) {
		seq := n.readSeq.Add(1)
		ch := make(chan uint64, 1)
		select {
		case n.readc <- readRequest{seq, ch}:
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-n.stopc:
			return 0, api.ErrNoLeader
		}
		round := time.NewTimer(n.cfg.ElectionTimeoutMin)
		select {
		case idx := <-ch:
			round.Stop()
			for n.commit.Load() < idx || n.stable.Load() < idx {
				if time.Now().After(deadline) {
					return 0, api.ErrNoLeader
				}
				select {
				case <-time.After(time.Millisecond):
				case <-ctx.Done():
					return 0, ctx.Err()
				}
			}
			return idx, nil
		case <-round.C:
			select {
			case n.readc <- readRequest{seq, nil}:
			case <-n.stopc:
			}
		case <-ctx.Done():
			round.Stop()
			return 0, ctx.Err()
		case <-n.stopc:
			round.Stop()
			return 0, api.ErrNoLeader
		}
	}
	return 0, api.ErrNoLeader
}

// firstIndexWithMsgID binary-searches the log (MsgID is non-decreasing
// along it) for the first index in [1, bound] whose MsgID >= id; bound+1
// when there is none.
func (n *Node) firstIndexWithMsgID(id, bound uint64) (uint64, error) {
	lo, hi := uint64(1), bound+1
	var ferr error
	idx := sort.Search(int(hi-lo), func(k int) bool {
		i := lo + uint64(k)
		ents, err := n.wal.Entries(i, i+1, 0)
		if err != nil || len(ents) == 0 {
			ferr = fmt.Errorf("node: read log at %d: %w", i, err)
			return true
		}
		return ents[0].MsgID >= id
	})
	return lo + uint64(idx), ferr
}

// Status implements api.Node.
func (n *Node) Status() api.Status {
	ch := make(chan api.Status, 1)
	select {
	case n.statusc <- ch:
	case <-n.stopc:
		return api.Status{ID: n.id, Role: "stopped"}
	}
	select {
	case st := <-ch:
		return st
	case <-n.stopc:
		return api.Status{ID: n.id, Role: "stopped"}
	}
}

// status builds the status on the loop goroutine.
func (n *Node) status() api.Status {
	r := n.r
	st := api.Status{
		ID:        n.id,
		Role:      r.Role().String(),
		Term:      r.Term(),
		LastID:    r.LastMsgID(),
		LastIndex: r.LastIndex(),
		Commit:    r.Committed(),
		CommitID:  n.msgIDAt(r.Committed()),
	}
	if r.IsLearner() {
		st.Role = "learner"
	}
	if r.Role() == replica.Leader {
		st.ReadOnly = !r.QuorumActive()
	}
	cc := r.Membership()
	if lead := r.Leader(); lead != protocol.None {
		st.Leader = &api.Peer{ID: lead}
		if m, ok := cc.Member(lead); ok {
			st.Leader.GRPC, st.Leader.HTTP = m.GRPC, m.HTTP
		}
		if lead == n.id {
			st.Leader.HTTP, st.Leader.GRPC = n.advertiseHTTP(), n.advertiseGRPC()
		} else if p, ok := n.tr.Peer(lead); ok && p.HTTP != "" {
			st.Leader.HTTP = p.HTTP
		}
	}
	for _, m := range cc.Members {
		ms := api.MemberStatus{ID: m.ID, HTTP: m.HTTP, GRPC: m.GRPC, Voter: m.Voter}
		if m.ID == n.id {
			ms.Self = true
			ms.HTTP, ms.GRPC = n.advertiseHTTP(), n.advertiseGRPC()
			ms.MatchID = n.msgIDAt(r.PersistedIndex())
		} else if p, ok := n.tr.Peer(m.ID); ok && p.HTTP != "" {
			ms.HTTP = p.HTTP
		}
		if pr := r.Progress(m.ID); pr != nil {
			ms.Health = string(r.Health(m.ID))
			ms.MatchID = n.msgIDAt(pr.Match)
			if pr.Match < r.LastIndex() {
				ms.LagMs = (r.Ticks() - pr.CaughtUpTick) * n.tick.Milliseconds()
				ms.Behind = r.LastIndex() - pr.Match
				if s := n.catchUp[m.ID]; s.rate > 0 {
					ms.CatchUpPerSec = s.rate
					ms.EtaMs = int64(float64(ms.Behind) / s.rate * 1000)
				}
			}
		} else if m.ID == n.id && r.Role() == replica.Leader {
			ms.Health = string(master.Healthy)
		}
		st.Members = append(st.Members, ms)
	}
	return st
}

// msgIDAt is the message id of the entry at index (0 for index 0).
func (n *Node) msgIDAt(index uint64) uint64 {
	if index == 0 {
		return 0
	}
	ents, err := n.r.Entries(index, index+1, 0)
	if err != nil || len(ents) == 0 {
		return 0
	}
	return ents[0].MsgID
}

// OnMasterReplaced calls fn (on another goroutine) once this node has known
// of a master other than id for two maximal election timeouts, unless ctx
// ends first (api.MasterWatch). The delay is what an old master takes at
// most to answer the inserts it held when it stepped down (orphanWaiters):
// after a planned handover they are answered, and only a master that is
// cut off or frozen leaves them unanswered past it.
func (n *Node) OnMasterReplaced(ctx context.Context, id string, fn func()) {
	grace := 2 * time.Duration(n.electionTicksMax) * n.tick
	go func() {
		for {
			v := n.view.Load()
			if v.leader != "" && v.leader != id {
				t := time.NewTimer(grace)
				defer t.Stop()
				select {
				case <-t.C:
					fn()
				case <-ctx.Done():
				}
				return
			}
			select {
			case <-v.changed:
			case <-ctx.Done():
				return
			}
		}
	}()
}
