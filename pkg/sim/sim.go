// Package sim is a deterministic simulator for replog's protocol core. It
// runs real pkg/replica state machines against a virtual clock, a virtual
// network (drop, delay, duplication, reordering, partitions of any shape) and
// virtual disks that lose unsynced writes on a crash, with random client
// writes at random write concerns. Everything comes from one seed, so a
// failing run replays exactly. After every tick it checks the properties of
// DESIGN §5 that the core is responsible for.
package sim

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/replog/replog/master"
	"github.com/replog/replog/pkg/protocol"
	"github.com/replog/replog/pkg/replica"
)

// Options shape one simulated run.
type Options struct {
	Seed  uint64
	Nodes int
	// Ticks of faulty running, followed by a healing phase.
	Ticks int
	// Per-message probabilities.
	Drop, Dup float64
	// MaxDelay is the largest network delay in ticks (reordering comes from
	// random delays).
	MaxDelay int
	// Per-tick probabilities of starting a fault.
	Crash, Partition, Pause float64
	// Propose is the per-tick probability of a client write, Read of a
	// linearizable read at a random node, Reconfigure of a membership
	// change (remove a voter, or add a node back as a learner).
	Propose, Read, Reconfigure float64
	// Bugs plants protocol bugs (the simulator's self-test).
	Bugs replica.Bugs
	// Trace keeps a readable event log (printed on failure).
	Trace bool
}

// Defaults returns the options `make test` uses. The seed picks the size
// (3 or 5 nodes) and one of three fault profiles, from a mostly healthy
// network to one that loses a third of its messages with a crash every 20
// ticks: the mild runs exercise long stretches of replication, the harsh
// ones the rare interleavings (Raft's Figure 8 needs several crashes in a
// row at the right moments).
func Defaults(seed uint64) Options {
	o := Options{Seed: seed, Nodes: 3 + 2*int(seed%2), Ticks: 1500, Dup: 0.02, Pause: 0.003, Propose: 0.4, Read: 0.2, Reconfigure: 0.01}
	switch (seed / 2) % 3 {
	case 0:
		o.Crash, o.Partition, o.Drop, o.MaxDelay = 0.004, 0.004, 0.05, 3
	case 1:
		o.Crash, o.Partition, o.Drop, o.MaxDelay = 0.03, 0.02, 0.2, 8
	default:
		o.Crash, o.Partition, o.Drop, o.MaxDelay = 0.05, 0.03, 0.3, 10
	}
	return o
}

// Stats count what a run did.
type Stats struct {
	Elections, Crashes, Partitions, Pauses int
	Proposed, Acked, AckedMajority         int
	Reads, ReadsAnswered                   int
	Reconfigs                              int
	Delivered, Dropped                     int
}

// Result is the outcome of a run.
type Result struct {
	Err   error
	Stats Stats
	Trace []string
}

type node struct {
	// checked is how far the node's log was verified, with the term and
	// message id found there; commitChecked the same for its commit index.
	checked, checkedTerm, checkedMsgID, commitChecked uint64

	id        string
	lastState string
	r         *replica.Replica
	disk      *replica.MemStorage
	up        bool
	downUntil int
	pauseTill int
	syncs     []syncJob
}

// syncJob is an fsync in flight: when it completes, the node's disk is
// durable up to what was written before it and the messages that waited for
// it go out.
type syncJob struct {
	due        int
	last, term uint64 // last entry written in the batch (0: none)
	after      []protocol.Message
}

type envelope struct {
	due int
	seq int
	m   protocol.Message
}

// write is a client write waiting for its write concern.
type write struct {
	node        string
	term, index uint64
	msgID       uint64
	data        string
	w           int
	// held are the nodes seen holding the entry durably.
	held map[string]bool
}

// acked is a write the core acknowledged with a majority concern.
type acked struct {
	index, term, msgID uint64
	data               string
}

type world struct {
	opt       Options
	rng       *rand.Rand
	now       int
	nodes     []*node
	byID      map[string]*node
	net       []envelope
	seq       int
	cut       map[[2]string]bool
	healAt    int
	pending   []write
	majority  []acked
	leaders   map[uint64]string // term → the master of that term
	known     map[[2]uint64]fingerprint
	committed map[uint64]uint64 // index → term, once committed anywhere
	stats     Stats
	trace     []string
	// bootstrap is the first node's ROLE=master membership.
	bootstrap *protocol.Config
	reads     map[uint64]pendingRead
	readSeq   uint64
	err       error
	nextData  int
}

// Run executes one simulated run.
func Run(opt Options) (res Result) {
	w := &world{
		opt: opt, rng: rand.New(rand.NewPCG(opt.Seed, 0x5eed)),
		byID: map[string]*node{}, cut: map[[2]string]bool{}, leaders: map[uint64]string{},
		known: map[[2]uint64]fingerprint{}, committed: map[uint64]uint64{}, reads: map[uint64]pendingRead{},
	}
	defer func() {
		if p := recover(); p != nil {
			res = Result{Err: fmt.Errorf("panic at tick %d: %v", w.now, p), Stats: w.stats, Trace: w.trace}
		}
	}()
	var cc protocol.Config
	for i := 0; i < opt.Nodes; i++ {
		id := fmt.Sprintf("n%d", i+1)
		cc.Members = append(cc.Members, protocol.Member{ID: id, GRPC: id, Voter: true})
	}
	for i := 0; i < opt.Nodes; i++ {
		n := &node{id: cc.Members[i].ID, disk: &replica.MemStorage{}, up: true}
		w.nodes = append(w.nodes, n)
		w.byID[n.id] = n
		c := w.replicaConfig(n)
		if i == 0 {
			w.bootstrap = &cc
			c.Bootstrap = &cc
		}
		n.r = replica.New(c)
	}
	for w.now = 0; w.now < opt.Ticks; w.now++ {
		w.faults()
		if err := w.tick(true); err != nil {
			return Result{Err: err, Stats: w.stats, Trace: w.trace}
		}
	}
	// Heal everything and let the cluster settle: it must elect a master,
	// commit, and converge.
	w.healAll()
	for end := w.now + 400; w.now < end; w.now++ {
		if err := w.tick(false); err != nil {
			return Result{Err: err, Stats: w.stats, Trace: w.trace}
		}
	}
	return Result{Err: w.checkConverged(), Stats: w.stats, Trace: w.trace}
}

func (w *world) replicaConfig(n *node) replica.Config {
	return replica.Config{
		ID: n.id, Storage: n.disk, HeartbeatTicks: 2, ElectionTicks: 10, ElectionTicksMax: 20,
		MaxMissedHeartbeats: 3, MaxMsgBytes: 100, MaxInflight: 8, MaxInflightBytes: 250,
		Rand: rand.New(rand.NewPCG(w.rng.Uint64(), 1)), Bugs: w.opt.Bugs,
	}
}

func (w *world) logf(format string, args ...any) {
	if w.opt.Trace {
		w.trace = append(w.trace, fmt.Sprintf("t=%d ", w.now)+fmt.Sprintf(format, args...))
	}
}

// ---- faults ----------------------------------------------------------------

func (w *world) faults() {
	o := w.opt
	for _, n := range w.nodes {
		if !n.up && w.now >= n.downUntil {
			w.restart(n)
		}
	}
	if w.healAt > 0 && w.now >= w.healAt {
		w.cut = map[[2]string]bool{}
		w.healAt = 0
		w.logf("partition healed")
	}
	if w.rng.Float64() < o.Crash {
		n := w.nodes[w.rng.IntN(len(w.nodes))]
		if n.up {
			w.crash(n)
		}
	}
	if w.healAt == 0 && w.rng.Float64() < o.Partition {
		w.partition()
	}
	if w.rng.Float64() < o.Pause {
		n := w.nodes[w.rng.IntN(len(w.nodes))]
		n.pauseTill = w.now + 5 + w.rng.IntN(80)
		w.stats.Pauses++
		w.logf("%s paused until %d", n.id, n.pauseTill)
	}
}

func (w *world) crash(n *node) {
	// Everything not yet fsynced is lost; fsyncs in flight never finish,
	// so the messages waiting for them are never sent.
	lost, _ := n.r.Entries(n.disk.SyncedIndex()+1, n.r.LastIndex()+1, 1<<30)
	n.disk.Crash()
	n.up = false
	w.forget(lost)
	n.up = false
	n.syncs = nil
	n.downUntil = w.now + 1 + w.rng.IntN(60)
	w.stats.Crashes++
	w.logf("%s crashed (durable up to %d, hs %+v), back at %d", n.id, n.disk.LastIndex(), n.disk.HardState(), n.downUntil)
}

func (w *world) restart(n *node) {
	c := w.replicaConfig(n)
	c.HardState = n.disk.HardState()
	for _, e := range n.disk.All() {
		if e.Type == protocol.EntryConfig {
			cc, err := protocol.DecodeConfig(e.Data)
			if err != nil {
				panic(err)
			}
			c.Configs = append(c.Configs, replica.IndexedConfig{Index: e.Index, Config: cc})
		}
		c.LastMsgID = e.MsgID
	}
	if n == w.nodes[0] {
		// Restarted with the very same environment, as an operator would.
		c.Bootstrap = w.bootstrap
	}
	n.r = replica.New(c)
	n.up = true
	n.commitChecked = min(n.commitChecked, n.r.Committed())
	w.logf("%s restarted: term %d, last %d", n.id, n.r.Term(), n.r.LastIndex())
}

// partition cuts the cluster: a random split into two sides, one isolated
// node, or a single broken link (asymmetric views).
func (w *world) partition() {
	ids := make([]string, len(w.nodes))
	for i, n := range w.nodes {
		ids[i] = n.id
	}
	w.rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	var desc string
	switch w.rng.IntN(3) {
	case 0: // split
		k := 1 + w.rng.IntN(len(ids)-1)
		for _, a := range ids[:k] {
			for _, b := range ids[k:] {
				w.cut[[2]string{a, b}], w.cut[[2]string{b, a}] = true, true
			}
		}
		desc = fmt.Sprintf("split %v | %v", ids[:k], ids[k:])
	case 1: // isolate one
		for _, b := range ids[1:] {
			w.cut[[2]string{ids[0], b}], w.cut[[2]string{b, ids[0]}] = true, true
		}
		desc = "isolate " + ids[0]
	default: // one link, one way
		w.cut[[2]string{ids[0], ids[1]}] = true
		desc = fmt.Sprintf("cut link %s->%s", ids[0], ids[1])
	}
	w.healAt = w.now + 10 + w.rng.IntN(80)
	w.stats.Partitions++
	w.logf("%s until %d", desc, w.healAt)
}

func (w *world) healAll() {
	w.cut = map[[2]string]bool{}
	w.healAt = 0
	for _, n := range w.nodes {
		if !n.up {
			w.restart(n)
		}
		n.pauseTill = 0
	}
	w.logf("healing phase")
}

// ---- one tick ----------------------------------------------------------------

func (w *world) tick(faulty bool) error {
	w.deliver(faulty)
	for _, n := range w.nodes {
		if n.up && w.now >= n.pauseTill {
			n.r.Tick()
		}
	}
	if faulty && w.rng.Float64() < w.opt.Propose {
		w.propose()
	}
	if faulty && w.rng.Float64() < w.opt.Read {
		w.read()
	}
	if faulty && w.rng.Float64() < w.opt.Reconfigure {
		w.reconfigure()
	}
	for _, n := range w.nodes {
		if n.up && w.now >= n.pauseTill {
			w.completeSyncs(n, faulty)
			w.handleReady(n, faulty)
		}
	}
	if w.opt.Trace {
		for _, n := range w.nodes {
			if st := fmt.Sprintf("%s/%d", n.r.Role(), n.r.Term()); n.up && st != n.lastState {
				w.logf("%s is now %s (lead %q, last %d/%d)", n.id, st, n.r.Leader(), n.r.LastIndex(), mustTerm(n.r))
				n.lastState = st
			}
		}
	}
	if w.err != nil {
		return w.err
	}
	if err := w.checkAcks(); err != nil {
		return err
	}
	return w.checkInvariants()
}

func (w *world) deliver(faulty bool) {
	keep := w.net[:0:0]
	var due []envelope
	for _, e := range w.net {
		if e.due <= w.now {
			due = append(due, e)
		} else {
			keep = append(keep, e)
		}
	}
	w.net = keep
	slices.SortFunc(due, func(a, b envelope) int { return (a.due-b.due)*1_000_000 + (a.seq - b.seq) })
	for _, e := range due {
		to := w.byID[e.m.To]
		if to == nil || !to.up || w.cut[[2]string{e.m.From, e.m.To}] {
			w.stats.Dropped++
			continue
		}
		if w.now < to.pauseTill {
			// Held until the pause ends, then in any order with what the
			// resumed node does first (ticks, client requests).
			e.due = to.pauseTill + w.rng.IntN(4)
			w.net = append(w.net, e)
			continue
		}
		w.stats.Delivered++
		if w.opt.Trace && e.m.Type != protocol.MsgApp && e.m.Type != protocol.MsgAppResp && e.m.Type != protocol.MsgHeartbeat && e.m.Type != protocol.MsgHeartbeatResp {
			w.logf("deliver %s", e.m.Describe())
		}
		before := to.r.Role()
		to.r.Step(e.m)
		if to.r.Role() == replica.Leader && before != replica.Leader {
			w.stats.Elections++
		}
	}
}

func (w *world) send(msgs []protocol.Message, faulty bool) {
	for _, m := range msgs {
		if faulty && w.rng.Float64() < w.opt.Drop {
			w.stats.Dropped++
			continue
		}
		copies := 1
		if faulty && w.rng.Float64() < w.opt.Dup {
			copies = 2
		}
		for c := 0; c < copies; c++ {
			w.seq++
			delay := 1
			if faulty {
				delay += w.rng.IntN(w.opt.MaxDelay + 1)
			}
			w.net = append(w.net, envelope{due: w.now + delay, seq: w.seq, m: m})
		}
	}
}

func (w *world) handleReady(n *node, faulty bool) {
	rd := n.r.Ready()
	if rd.IsEmpty() {
		return
	}
	for _, rs := range rd.ReadStates {
		if err := w.checkRead(n, rs); err != nil && w.err == nil {
			w.err = err
		}
	}
	if rd.MustSaveHardState {
		n.disk.SetHardState(rd.HardState)
	}
	job := syncJob{due: w.now + w.rng.IntN(3), after: rd.AfterPersist}
	if len(rd.Entries) > 0 {
		if err := n.disk.Append(rd.Entries); err != nil {
			panic(err)
		}
		last := rd.Entries[len(rd.Entries)-1]
		job.last, job.term = last.Index, last.Term
	}
	w.send(rd.Messages, faulty)
	if rd.MustSaveHardState || len(rd.Entries) > 0 || len(rd.AfterPersist) > 0 {
		n.syncs = append(n.syncs, job)
	}
	w.completeSyncs(n, faulty)
}

func (w *world) completeSyncs(n *node, faulty bool) {
	for len(n.syncs) > 0 && n.syncs[0].due <= w.now {
		j := n.syncs[0]
		n.syncs = n.syncs[1:]
		n.disk.Sync()
		if j.last > 0 {
			n.r.Persisted(j.last, j.term)
		}
		w.send(j.after, faulty)
	}
}

// ---- clients -----------------------------------------------------------------

func (w *world) propose() {
	var leaders []*node
	for _, n := range w.nodes {
		if n.up && w.now >= n.pauseTill && n.r.Role() == replica.Leader {
			leaders = append(leaders, n)
		}
	}
	if len(leaders) == 0 {
		return
	}
	n := leaders[w.rng.IntN(len(leaders))]
	w.nextData++
	data := fmt.Sprintf("v%d", w.nextData)
	index, msgID, err := n.r.Propose([]byte(data), "", int64(w.now))
	if err != nil {
		return
	}
	voters := n.r.Voters()
	wc := 1 + w.rng.IntN(voters)
	if w.rng.IntN(2) == 0 {
		wc = master.Majority(voters)
	}
	w.stats.Proposed++
	w.pending = append(w.pending, write{node: n.id, term: n.r.Term(), index: index, msgID: msgID, data: data, w: wc, held: map[string]bool{}})
	w.logf("%s proposes %q as msg %d at index %d (term %d, w=%d)", n.id, data, msgID, index, n.r.Term(), wc)
}

// reconfigure has the master remove a random voter (keeping at least two)
// or add a node that is not a member back as a learner, which it promotes
// once caught up.
func (w *world) reconfigure() {
	var lead *node
	for _, n := range w.nodes {
		if n.up && w.now >= n.pauseTill && n.r.Role() == replica.Leader {
			lead = n
		}
	}
	if lead == nil {
		return
	}
	cur := lead.r.Membership()
	var next protocol.Config
	var outsiders []string
	for _, n := range w.nodes {
		if _, ok := cur.Member(n.id); !ok {
			outsiders = append(outsiders, n.id)
		}
	}
	var what string
	if len(outsiders) > 0 && (w.rng.IntN(2) == 0 || len(cur.Voters()) <= 2) {
		id := outsiders[w.rng.IntN(len(outsiders))]
		next = protocol.Config{Members: append(append([]protocol.Member(nil), cur.Members...), protocol.Member{ID: id, GRPC: id})}
		what = "add learner " + id
	} else {
		voters := cur.Voters()
		if len(voters) <= 2 {
			return
		}
		id := voters[w.rng.IntN(len(voters))]
		for _, m := range cur.Members {
			if m.ID != id {
				next.Members = append(next.Members, m)
			}
		}
		what = "remove " + id
	}
	if _, err := lead.r.ProposeConfChange(next); err != nil {
		w.logf("%s: %s refused: %v", lead.id, what, err)
		return
	}
	w.stats.Reconfigs++
	w.logf("%s proposes %s", lead.id, what)
}

// pendingRead is a linearizable read in flight: whatever index answers it
// must cover every write acknowledged with a majority before it was asked.
type pendingRead struct {
	node     string
	minIndex uint64
}

func (w *world) read() {
	n := w.nodes[w.rng.IntN(len(w.nodes))]
	if !n.up || w.now < n.pauseTill {
		return
	}
	w.readSeq++
	var floor uint64
	for _, a := range w.majority {
		floor = max(floor, a.index)
	}
	w.reads[w.readSeq] = pendingRead{node: n.id, minIndex: floor}
	w.stats.Reads++
	n.r.ReadIndex(w.readSeq)
}

// checkRead: a read index is linearizable if it covers every write
// acknowledged with a majority before the read began.
func (w *world) checkRead(n *node, rs replica.ReadState) error {
	p, ok := w.reads[rs.Context]
	if !ok {
		return nil // a duplicated answer to a read already answered
	}
	if p.node != n.id {
		return fmt.Errorf("%s: answer to read %d, which %s asked", n.id, rs.Context, p.node)
	}
	delete(w.reads, rs.Context)
	w.stats.ReadsAnswered++
	if rs.Index < p.minIndex {
		return fmt.Errorf("%s: linearizable read %d got read index %d, below majority-acknowledged index %d written before it",
			n.id, rs.Context, rs.Index, p.minIndex)
	}
	w.logf("%s read %d at index %d", n.id, rs.Context, rs.Index)
	return nil
}

// checkAcks acknowledges writes the way pkg/node does (AckIndex on the
// master that took them, in the same term) and checks each acknowledgement
// is true: w nodes really hold the entry durably.
func (w *world) checkAcks() error {
	var keep []write
	for _, p := range w.pending {
		n := w.byID[p.node]
		if !n.up || n.r.Role() != replica.Leader || n.r.Term() != p.term {
			continue // outcome unknown, as a client would see it
		}
		for _, m := range w.nodes {
			if m.disk.SyncedIndex() >= p.index {
				if t, err := m.disk.Term(p.index); err == nil && t == p.term {
					p.held[m.id] = true
				}
			}
		}
		if n.r.AckIndex(p.w) < p.index {
			keep = append(keep, p)
			continue
		}
		holders := 0
		for _, m := range w.nodes {
			if m.disk.SyncedIndex() >= p.index {
				if t, err := m.disk.Term(p.index); err == nil && t == p.term {
					holders++
				}
			}
		}
		maj := master.Majority(n.r.Voters())
		if p.w < maj {
			// Below a majority a copy may be replaced after it was
			// acknowledged to the master (that is the documented risk of
			// w < majority); what must hold is that w nodes had it.
			holders = len(p.held)
		}
		if holders < p.w {
			return fmt.Errorf("write %q (msg %d, index %d, term %d) acknowledged with w=%d but only %d nodes hold it durably",
				p.data, p.msgID, p.index, p.term, p.w, holders)
		}
		w.stats.Acked++
		w.logf("%s acknowledges msg %d (w=%d)", n.id, p.msgID, p.w)
		if p.w >= maj {
			w.stats.AckedMajority++
			w.majority = append(w.majority, acked{p.index, p.term, p.msgID, p.data})
		}
	}
	w.pending = keep
	return nil
}

// ---- properties --------------------------------------------------------------

func entriesOf(r *replica.Replica) []protocol.Entry {
	// Used once per run, after healing.
	last := r.LastIndex()
	if last == 0 {
		return nil
	}
	var out []protocol.Entry
	for i := uint64(1); i <= last; {
		ents, err := r.Entries(i, last+1, 1<<30)
		if err != nil {
			panic(err)
		}
		out = append(out, ents...)
		i += uint64(len(ents))
	}
	return out
}

// forget drops the fingerprints of entries a crash destroyed when no other
// node holds them and no message carries them: such an entry never existed
// for anyone else. (A master that crashes before its first fsync restarts
// with empty data and bootstraps term 1 again; its new entries of term 1
// are not a log-matching violation, since nobody saw the old ones.)
func (w *world) forget(lost []protocol.Entry) {
	for _, e := range lost {
		key := [2]uint64{e.Index, e.Term}
		held := false
		for _, m := range w.nodes {
			if t, ok := m.r.LogTerm(e.Index); m.up && ok && t == e.Term {
				held = true
			}
		}
		for _, env := range w.net {
			for _, ie := range env.m.Entries {
				if ie.Index == e.Index && ie.Term == e.Term {
					held = true
				}
			}
		}
		if !held {
			delete(w.known, key)
		}
	}
}

// fingerprint is what an entry at a given (index, term) must always be.
type fingerprint struct {
	typ      protocol.EntryType
	msgID    uint64
	data     string
	prevTerm uint64
}

// checkInvariants checks, incrementally, after every tick:
//  1. at most one master per term;
//  2. log matching: an (index, term) pair always names the same entry with
//     the same predecessor term, on every node and at every time, which by
//     induction makes logs that share an (index, term) identical up to it;
//  3. leader completeness: a node that becomes master of a term holds every
//     entry acknowledged with a majority in that term or before;
//  4. committed entries form one history: an index committed anywhere is
//     committed with the same term everywhere;
//     and message ids are gap-free along every log.
func (w *world) checkInvariants() error {
	for _, n := range w.nodes {
		if !n.up {
			continue
		}
		r := n.r
		if r.Role() == replica.Leader {
			if prev, ok := w.leaders[r.Term()]; ok && prev != n.id {
				return fmt.Errorf("two masters in term %d: %s and %s", r.Term(), prev, n.id)
			}
			if _, seen := w.leaders[r.Term()]; !seen {
				w.leaders[r.Term()] = n.id
				for _, a := range w.majority {
					if t, _ := r.LogTerm(a.index); a.term > r.Term() || t != a.term {
						return fmt.Errorf("new master %s (term %d) lacks majority-acknowledged msg %d %q at index %d (term %d)",
							n.id, r.Term(), a.msgID, a.data, a.index, a.term)
					}
				}
			}
		}
		// Re-verify from the last index still holding the term we verified.
		if t, ok := r.LogTerm(n.checked); !ok || t != n.checkedTerm {
			n.checked, n.checkedTerm, n.checkedMsgID = 0, 0, 0
		}
		last := r.LastIndex()
		if last > n.checked {
			ents, err := r.Entries(n.checked+1, last+1, 1<<30)
			if err != nil {
				return err
			}
			prevTerm, prevMsg := n.checkedTerm, n.checkedMsgID
			for _, e := range ents {
				fp := fingerprint{e.Type, e.MsgID, string(e.Data), prevTerm}
				key := [2]uint64{e.Index, e.Term}
				if old, ok := w.known[key]; ok && old != fp {
					return fmt.Errorf("log matching violated: %s holds %s at index %d term %d, another node held %+v",
						n.id, describe(e), e.Index, e.Term, old)
				}
				w.known[key] = fp
				want := prevMsg
				if e.Type == protocol.EntryNormal {
					want++
				}
				if e.MsgID != want {
					return fmt.Errorf("%s: entry %d has msg id %d, want %d (gap or reordering)", n.id, e.Index, e.MsgID, want)
				}
				prevTerm, prevMsg = e.Term, e.MsgID
			}
			n.checked, n.checkedTerm, n.checkedMsgID = last, prevTerm, prevMsg
		}
		for c := r.Committed(); n.commitChecked < c; {
			n.commitChecked++
			t, ok := r.LogTerm(n.commitChecked)
			if !ok {
				return fmt.Errorf("%s: committed index %d not in its log", n.id, n.commitChecked)
			}
			if ct, seen := w.committed[n.commitChecked]; seen && ct != t {
				return fmt.Errorf("committed entries differ: index %d committed with term %d on %s, with term %d elsewhere",
					n.commitChecked, t, n.id, ct)
			}
			w.committed[n.commitChecked] = t
		}
	}
	return nil
}

func (w *world) checkConverged() error {
	var lead *node
	for _, n := range w.nodes {
		if n.r.Role() == replica.Leader {
			lead = n
		}
	}
	if lead == nil {
		return fmt.Errorf("no master after %d ticks of healing; %s", 400, w.describeNodes())
	}
	want := entriesOf(lead.r)
	members := lead.r.Membership()
	if lead.r.Committed() != uint64(len(want)) {
		return fmt.Errorf("master %s committed %d of %d entries after healing; %s", lead.id, lead.r.Committed(), len(want), w.describeNodes())
	}
	for _, n := range w.nodes {
		if _, ok := members.Member(n.id); !ok {
			continue // removed: it is no longer sent anything
		}
		got := entriesOf(n.r)
		if len(got) != len(want) {
			return fmt.Errorf("%s holds %d entries after healing, master %s holds %d", n.id, len(got), lead.id, len(want))
		}
		for i := range got {
			if !sameEntry(got[i], want[i]) {
				return fmt.Errorf("%s differs from master %s at index %d after healing", n.id, lead.id, i+1)
			}
		}
	}
	for _, a := range w.majority {
		if e := want[a.index-1]; e.MsgID != a.msgID || string(e.Data) != a.data {
			return fmt.Errorf("majority-acknowledged msg %d %q lost: index %d holds %s", a.msgID, a.data, a.index, describe(e))
		}
	}
	return nil
}

func (w *world) describeNodes() string {
	var b strings.Builder
	for _, n := range w.nodes {
		fmt.Fprintf(&b, "\n  %s up=%v role=%s term=%d last=%d commit=%d persisted=%d synced=%d", n.id, n.up, n.r.Role(), n.r.Term(), n.r.LastIndex(), n.r.Committed(), n.r.PersistedIndex(), n.disk.SyncedIndex())
		for _, m := range w.nodes {
			if pr := n.r.Progress(m.id); pr != nil {
				fmt.Fprintf(&b, "\n    -> %s %s paused=%v probeSent=%v", m.id, pr, pr.IsPaused(), pr.ProbeSent)
			}
		}
	}
	return b.String()
}

func sameEntry(a, b protocol.Entry) bool {
	return a.Index == b.Index && a.Term == b.Term && a.Type == b.Type && a.MsgID == b.MsgID && string(a.Data) == string(b.Data)
}

func describe(e protocol.Entry) string {
	return fmt.Sprintf("{%d/%d %s msg=%d %q}", e.Index, e.Term, e.Type, e.MsgID, e.Data)
}

// FormatTrace renders the last lines of a trace.
func FormatTrace(tr []string, last int) string {
	if len(tr) > last {
		tr = tr[len(tr)-last:]
	}
	return strings.Join(tr, "\n")
}

func mustTerm(r *replica.Replica) uint64 {
	t, _ := r.LogTerm(r.LastIndex())
	return t
}
