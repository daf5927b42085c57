package node

import (
	"errors"
	"slices"
	"time"

	"github.com/replog/replog/master"
	"github.com/replog/replog/pkg/api"
	"github.com/replog/replog/pkg/protocol"
	"github.com/replog/replog/pkg/replica"
)

// readRequest registers (ch != nil) or cancels a linearizable read.
type readRequest struct {
	ctx uint64
	ch  chan uint64
}

// proposal is an insert on its way into the loop.
type proposal struct {
	data []byte
	key  string
	w    int // resolved write concern
	// accepted gets the waiter (or an error) once the loop has handled it.
	accepted chan acceptance
}

type acceptance struct {
	w   *waiter
	err error
}

// waiter is an insert waiting for its write concern.
type waiter struct {
	index, msgID, term uint64
	w                  int
	dup                bool
	deadline           int64        // in ticks, once orphaned
	done               chan outcome // buffered 1, written once
	// commitSuffices: w was at most a majority of the voters when the write
	// was proposed, so learning it committed is enough to answer success.
	commitSuffices bool
}

type outcome struct {
	res api.InsertResult
	err error
}

// waitSet holds waiters by write concern, each list in index order.
type waitSet map[int][]*waiter

func (ws waitSet) add(w *waiter) {
	q := ws[w.w]
	i, _ := slices.BinarySearchFunc(q, w.index, func(x *waiter, idx uint64) int {
		if x.index <= idx {
			return -1
		}
		return 1
	})
	ws[w.w] = slices.Insert(q, i, w)
}

func (ws waitSet) remove(w *waiter) {
	q := ws[w.w]
	if i := slices.Index(q, w); i >= 0 {
		ws[w.w] = slices.Delete(q, i, i+1)
	}
}

// run is the event loop: the only goroutine that touches the core.
func (n *Node) run() {
	ticker := time.NewTicker(n.tick)
	defer ticker.Stop()
	for {
		select {
		case <-ticker.C:
			n.r.Tick()
			if n.r.Ticks()%int64(time.Second/n.tick) == 0 {
				n.sampleCatchUp()
			}
		case msgs := <-n.recvc:
			n.step(msgs)
			// Drain what else arrived, so one Ready covers it all.
			for more := true; more; {
				select {
				case msgs = <-n.recvc:
					n.step(msgs)
				default:
					more = false
				}
			}
		case p := <-n.propc:
			n.propose(p)
			for i := 0; i < 4096; i++ {
				select {
				case p = <-n.propc:
					n.propose(p)
					continue
				default:
				}
				break
			}
		case ps := <-n.persistc:
			n.r.Persisted(ps.index, ps.term)
		case w := <-n.cancelc:
			n.waiters.remove(w)
		case ch := <-n.statusc:
			ch <- n.status()
		case ch := <-n.transfc:
			ch <- n.r.TransferLeadership("")
		case c := <-n.confc:
			n.handleConfChange(c)
		case rr := <-n.readc:
			if rr.ch == nil {
				delete(n.readWaiters, rr.ctx)
			} else {
				n.readWaiters[rr.ctx] = rr.ch
				n.r.ReadIndex(rr.ctx)
			}
		case <-n.stopc:
			n.orphanWaiters()
			n.resolveOrphans(true)
			return
		}
		n.afterEvents()
	}
}

func (n *Node) step(msgs []protocol.Message) {
	for _, m := range msgs {
		if m.To != n.id {
			n.log.Warn().Str("to", m.To).Str("from", m.From).
				Msg("dropping a message addressed to another node id: the master lists this node under another address (set SERVER_ID or use id@host:port in SENTINELS)")
			continue
		}
		n.r.Step(m)
	}
}

// afterEvents hands the core's work to storage and transport and answers
// waiters.
func (n *Node) afterEvents() {
	rd := n.r.Ready()
	for _, rs := range rd.ReadStates {
		if ch, ok := n.readWaiters[rs.Context]; ok {
			ch <- rs.Index
			delete(n.readWaiters, rs.Context)
		}
	}
	if len(rd.Entries) > 0 {
		n.indexKeys(rd.Entries)
		for _, e := range rd.Entries {
			if e.Type == protocol.EntryConfig {
				// New members' addresses, and N for write concerns.
				n.syncPeers()
				n.publish()
				break
			}
		}
	}
	if rd.MustSaveHardState || len(rd.Entries) > 0 || len(rd.AfterPersist) > 0 {
		b := &batch{entries: rd.Entries, after: rd.AfterPersist}
		if rd.MustSaveHardState {
			hs := rd.HardState
			b.hs = &hs
		}
		n.store.push(b)
	}
	if len(rd.Messages) > 0 {
		n.tr.Send(rd.Messages...)
	}
	n.commit.Store(n.r.Committed())
	if n.r.Leader() != protocol.None {
		n.leaderSeen.Store(time.Now().UnixNano())
	}

	role := n.r.Role()
	if role != n.lastRole || n.view.Load().term != n.r.Term() || n.view.Load().leader != n.r.Leader() {
		if n.lastRole == replica.Leader && role != replica.Leader {
			n.orphanWaiters()
		}
		if n.view.Load().term != n.r.Term() {
			// Reads in flight belonged to the old term's master: their
			// askers time out and ask again.
			clear(n.readWaiters)
		}
		if role != n.lastRole {
			n.log.Info().Str("role", role.String()).Uint64("term", n.r.Term()).Str("master", n.r.Leader()).Msg("role changed")
		}
		n.lastRole = role
		n.syncPeers()
		n.publish()
	}
	if role == replica.Leader {
		n.releaseWaiters()
	}
	if len(n.orphans) > 0 {
		n.resolveOrphans(false)
	}
}

// publish makes the leadership view visible to other goroutines.
func (n *Node) publish() {
	v := &leaderView{role: n.r.Role(), term: n.r.Term(), leader: n.r.Leader(), changed: make(chan struct{})}
	if old := n.view.Swap(v); old != nil {
		close(old.changed)
	}
	n.voters.Store(int64(n.r.Voters()))
}

// indexKeys keeps the idempotency-key index in step with the log: entries
// from ents[0].Index on replace whatever was there. Only a follower that
// truncates a conflicting suffix pays for a scan of the index.
func (n *Node) indexKeys(ents []protocol.Entry) {
	first := ents[0].Index
	if first <= n.handedLast {
		for k, ref := range n.keys {
			if ref.index >= first {
				delete(n.keys, k)
			}
		}
	}
	for _, e := range ents {
		if e.Key != "" && e.Type == protocol.EntryNormal {
			n.keys[e.Key] = keyRef{e.Index, e.MsgID}
		}
	}
	n.handedLast = ents[len(ents)-1].Index
}

func (n *Node) propose(p *proposal) {
	if p.key != "" {
		if ref, ok := n.keys[p.key]; ok && n.r.Role() == replica.Leader {
			term, _ := n.r.LogTerm(ref.index)
			w := &waiter{index: ref.index, msgID: ref.msgID, term: term, w: p.w, dup: true, done: make(chan outcome, 1)}
			n.addWaiter(w)
			p.accepted <- acceptance{w: w}
			return
		}
	}
	index, msgID, err := n.r.Propose(p.data, p.key, time.Now().UnixNano())
	if err != nil {
		p.accepted <- acceptance{err: err}
		return
	}
	if p.key != "" {
		n.keys[p.key] = keyRef{index, msgID}
	}
	w := &waiter{index: index, msgID: msgID, term: n.r.Term(), w: p.w, done: make(chan outcome, 1)}
	n.addWaiter(w)
	p.accepted <- acceptance{w: w}
	n.metrics.inserts.Inc()
}

// addWaiter registers an insert (or membership change) waiting for its
// write concern.
func (n *Node) addWaiter(w *waiter) {
	w.commitSuffices = w.w <= master.Majority(n.r.Voters())
	n.waiters.add(w)
}

// releaseWaiters answers every waiter whose write concern is met.
func (n *Node) releaseWaiters() {
	for w, q := range n.waiters {
		if len(q) == 0 {
			continue
		}
		ack := n.r.AckIndex(w)
		i := 0
		for ; i < len(q) && q[i].index <= ack; i++ {
			n.answer(q[i])
		}
		if i > 0 {
			n.waiters[w] = q[i:]
		}
	}
}

func (n *Node) answer(w *waiter) {
	w.done <- outcome{res: api.InsertResult{ID: w.msgID, Term: w.term, Acks: n.r.Acks(w.index), Duplicate: w.dup}}
}

// orphanWaiters takes the waiters of a master that just stepped down. Their
// entries may well survive (after a leadership transfer the new master holds
// them all): they wait, as orphans, for this node to learn from the new
// master that their entries are committed. Only a write concern of at most
// a majority can be judged that way.
func (n *Node) orphanWaiters() {
	deadline := n.r.Ticks() + 2*int64(n.electionTicksMax)
	for k, q := range n.waiters {
		for _, w := range q {
			if !w.commitSuffices {
				w.done <- outcome{err: &api.OutcomeUnknownError{ID: w.msgID, Term: w.term, Code: "leadership_lost"}}
				continue
			}
			w.deadline = deadline
			n.orphans = append(n.orphans, w)
		}
		delete(n.waiters, k)
	}
}

// resolveOrphans answers the orphans whose fate is known: committed with the
// term they were written in (success: a majority holds them), replaced by
// another entry, or not known within two election timeouts (or at stop).
func (n *Node) resolveOrphans(final bool) {
	maj := master.Majority(n.r.Voters())
	keep := n.orphans[:0]
	for _, w := range n.orphans {
		t, ok := n.r.LogTerm(w.index)
		switch {
		case ok && t == w.term && n.r.Committed() >= w.index:
			w.done <- outcome{res: api.InsertResult{ID: w.msgID, Term: w.term, Acks: maj, Duplicate: w.dup}}
		case (ok && t != w.term) || final || n.r.Ticks() > w.deadline:
			w.done <- outcome{err: &api.OutcomeUnknownError{ID: w.msgID, Term: w.term, Code: "leadership_lost"}}
		default:
			keep = append(keep, w)
		}
	}
	n.orphans = keep
}

// errorFor maps the core's refusals to the API's.
func errorFor(err error) error {
	switch {
	case errors.Is(err, replica.ErrNoQuorum):
		return api.ErrNoQuorum
	default:
		return err
	}
}

// catchUpSample is a follower's match index at one moment, and the rate
// it has been growing at.
type catchUpSample struct {
	match uint64
	at    time.Time
	rate  float64 // entries per second
}

// sampleCatchUp measures, once a second, how fast each follower receives
// the log, and logs the progress of those far behind (a new member
// streaming a large log).
func (n *Node) sampleCatchUp() {
	if n.r.Role() != replica.Leader {
		clear(n.catchUp)
		return
	}
	now := time.Now()
	last := n.r.LastIndex()
	for _, m := range n.r.Membership().Members {
		pr := n.r.Progress(m.ID)
		if pr == nil {
			continue
		}
		prev, ok := n.catchUp[m.ID]
		s := catchUpSample{match: pr.Match, at: now}
		if ok && pr.Match >= prev.match {
			s.rate = float64(pr.Match-prev.match) / now.Sub(prev.at).Seconds()
		}
		n.catchUp[m.ID] = s
		if behind := last - pr.Match; behind > 10000 && n.r.Ticks()%int64(5*time.Second/n.tick) == 0 {
			ev := n.log.Info().Str("member", m.ID).Bool("voter", m.Voter).Uint64("behind", behind).Float64("entries_per_sec", s.rate)
			if s.rate > 0 {
				ev = ev.Dur("eta", time.Duration(float64(behind)/s.rate*float64(time.Second)))
			}
			ev.Msg("member catching up")
		}
	}
}
