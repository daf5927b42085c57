package replica

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/replog/replog/pkg/protocol"
)

// network is a scripted in-memory cluster: every node's storage syncs at
// once, messages are delivered in FIFO order unless cut.
type network struct {
	t     *testing.T
	ids   []string
	nodes map[string]*Replica
	disks map[string]*MemStorage
	queue []protocol.Message
	cut   map[string]bool // isolated nodes
	down  map[string]bool
}

func testConfig(id string, s *MemStorage, seed uint64) Config {
	return Config{
		ID: id, Storage: s, HeartbeatTicks: 1, ElectionTicks: 10, ElectionTicksMax: 20,
		MaxInflight: 4, MaxMsgBytes: 200, Rand: rand.New(rand.NewPCG(seed, 1)),
	}
}

func newNetwork(t *testing.T, n int) *network {
	nw := &network{t: t, nodes: map[string]*Replica{}, disks: map[string]*MemStorage{}, cut: map[string]bool{}, down: map[string]bool{}}
	var cc protocol.Config
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("n%d", i)
		nw.ids = append(nw.ids, id)
		cc.Members = append(cc.Members, protocol.Member{ID: id, GRPC: id + ":9090", Voter: true})
	}
	for i, id := range nw.ids {
		s := &MemStorage{}
		nw.disks[id] = s
		c := testConfig(id, s, uint64(i))
		if i == 0 {
			c.Bootstrap = &cc
		}
		nw.nodes[id] = New(c)
	}
	return nw
}

// restart rebuilds a node from its disk (after a crash).
func (nw *network) restart(id string, seed uint64) {
	s := nw.disks[id]
	s.Crash()
	c := testConfig(id, s, seed)
	c.HardState = s.HardState()
	var last uint64
	for _, e := range s.All() {
		if e.Type == protocol.EntryConfig {
			cc, _ := protocol.DecodeConfig(e.Data)
			c.Configs = append(c.Configs, IndexedConfig{Index: e.Index, Config: cc})
		}
		last = e.MsgID
	}
	c.LastMsgID = last
	nw.nodes[id] = New(c)
	delete(nw.down, id)
}

// process drains every node's Ready once.
func (nw *network) process() bool {
	busy := false
	for _, id := range nw.ids {
		if nw.down[id] {
			continue
		}
		r := nw.nodes[id]
		rd := r.Ready()
		if rd.IsEmpty() {
			continue
		}
		busy = true
		d := nw.disks[id]
		if rd.MustSaveHardState {
			d.SetHardState(rd.HardState)
		}
		if err := d.Append(rd.Entries); err != nil {
			nw.t.Fatalf("%s: append: %v", id, err)
		}
		d.Sync()
		if n := len(rd.Entries); n > 0 {
			r.Persisted(rd.Entries[n-1].Index, rd.Entries[n-1].Term)
		}
		nw.queue = append(nw.queue, rd.Messages...)
		nw.queue = append(nw.queue, rd.AfterPersist...)
	}
	return busy
}

// stabilize delivers messages until the cluster is quiet.
func (nw *network) stabilize() {
	for i := 0; i < 10000; i++ {
		busy := nw.process()
		if len(nw.queue) == 0 && !busy {
			return
		}
		q := nw.queue
		nw.queue = nil
		for _, m := range q {
			if nw.down[m.To] || nw.down[m.From] || nw.cut[m.To] || nw.cut[m.From] {
				continue
			}
			nw.nodes[m.To].Step(m)
		}
	}
	nw.t.Fatal("network did not stabilize")
}

func (nw *network) tick(n int) {
	for i := 0; i < n; i++ {
		for _, id := range nw.ids {
			if !nw.down[id] {
				nw.nodes[id].Tick()
			}
		}
		nw.stabilize()
	}
}

func (nw *network) leader() string {
	lead := ""
	for _, id := range nw.ids {
		if !nw.down[id] && !nw.cut[id] && nw.nodes[id].Role() == Leader {
			if lead != "" {
				nw.t.Fatalf("two masters: %s and %s", lead, id)
			}
			lead = id
		}
	}
	return lead
}

func (nw *network) propose(id, msg string) (uint64, uint64) {
	idx, mid, err := nw.nodes[id].Propose([]byte(msg), "", 0)
	if err != nil {
		nw.t.Fatalf("propose on %s: %v", id, err)
	}
	return idx, mid
}

func messages(s *MemStorage) []string {
	var out []string
	for _, e := range s.All() {
		if e.Type == protocol.EntryNormal {
			out = append(out, fmt.Sprintf("%d:%s", e.MsgID, e.Data))
		}
	}
	return out
}

func TestBootstrapReplicates(t *testing.T) {
	nw := newNetwork(t, 3)
	nw.stabilize()
	if got := nw.leader(); got != "n1" {
		t.Fatalf("leader = %q, want n1", got)
	}
	for i := 1; i <= 5; i++ {
		_, mid := nw.propose("n1", fmt.Sprintf("m%d", i))
		if mid != uint64(i) {
			t.Fatalf("msg id = %d, want %d", mid, i)
		}
	}
	nw.stabilize()
	want := []string{"1:m1", "2:m2", "3:m3", "4:m4", "5:m5"}
	for _, id := range nw.ids {
		if got := messages(nw.disks[id]); !slices.Equal(got, want) {
			t.Errorf("%s holds %v, want %v", id, got, want)
		}
	}
	r := nw.nodes["n1"]
	if r.Committed() != r.LastIndex() {
		t.Errorf("committed %d, want last %d", r.Committed(), r.LastIndex())
	}
	if got := r.AckIndex(3); got != r.LastIndex() {
		t.Errorf("AckIndex(3) = %d, want %d", got, r.LastIndex())
	}
	if got := nw.nodes["n2"].Membership().Voters(); len(got) != 3 {
		t.Errorf("follower membership = %v", got)
	}
}

func TestWriteConcernWithDownFollower(t *testing.T) {
	nw := newNetwork(t, 3)
	nw.down["n3"] = true
	nw.stabilize()
	idx, _ := nw.propose("n1", "a")
	nw.stabilize()
	r := nw.nodes["n1"]
	if got := r.AckIndex(2); got < idx {
		t.Fatalf("AckIndex(2) = %d, want >= %d", got, idx)
	}
	if got := r.AckIndex(3); got >= idx {
		t.Fatalf("AckIndex(3) = %d with n3 down, want < %d", got, idx)
	}
	// n3 comes back empty and catches up via heartbeats.
	delete(nw.down, "n3")
	nw.tick(3)
	if got := r.AckIndex(3); got < idx {
		t.Fatalf("after n3 returns AckIndex(3) = %d, want >= %d", got, idx)
	}
	if got, want := messages(nw.disks["n3"]), []string{"1:a"}; !slices.Equal(got, want) {
		t.Fatalf("n3 holds %v, want %v", got, want)
	}
}

// Reference: Raft §5.2 (election) and §5.4.1 (election restriction).
func TestFailoverElectsUpToDateNode(t *testing.T) {
	nw := newNetwork(t, 3)
	nw.stabilize()
	for i := 0; i < 3; i++ {
		nw.propose("n1", fmt.Sprintf("a%d", i))
	}
	nw.stabilize()
	nw.down["n1"] = true
	nw.tick(40)
	lead := nw.leader()
	if lead == "" || lead == "n1" {
		t.Fatalf("leader after n1 down = %q", lead)
	}
	_, mid := nw.propose(lead, "b")
	if mid != 4 {
		t.Fatalf("msg id after failover = %d, want 4 (no-op entries consume no id)", mid)
	}
	nw.stabilize()
	// The old master returns as a follower and catches up.
	nw.restart("n1", 99)
	nw.tick(5)
	if got := nw.nodes["n1"].Role(); got != Follower {
		t.Fatalf("old master role = %v", got)
	}
	want := []string{"1:a0", "2:a1", "3:a2", "4:b"}
	for _, id := range nw.ids {
		if got := messages(nw.disks[id]); !slices.Equal(got, want) {
			t.Errorf("%s holds %v, want %v", id, got, want)
		}
	}
}

// An isolated master's unreplicated entries are truncated when it rejoins.
// Reference: Raft §5.3 (log matching, conflicting suffix).
func TestIsolatedMasterSuffixTruncated(t *testing.T) {
	nw := newNetwork(t, 3)
	nw.stabilize()
	nw.propose("n1", "a")
	nw.stabilize()
	nw.cut["n1"] = true
	nw.propose("n1", "lost-w1") // acknowledged by n1 alone (w=1)
	nw.tick(40)
	lead := nw.leader()
	if lead == "" || lead == "n1" {
		t.Fatalf("leader = %q", lead)
	}
	nw.propose(lead, "b")
	nw.stabilize()
	// CheckQuorum: n1 stepped down while cut off.
	if got := nw.nodes["n1"].Role(); got == Leader {
		t.Fatalf("isolated master still master")
	}
	if _, _, err := nw.nodes["n1"].Propose([]byte("x"), "", 0); err == nil {
		t.Fatalf("isolated node accepted a write")
	}
	delete(nw.cut, "n1")
	nw.tick(5)
	want := []string{"1:a", "2:b"}
	for _, id := range nw.ids {
		if got := messages(nw.disks[id]); !slices.Equal(got, want) {
			t.Errorf("%s holds %v, want %v", id, got, want)
		}
	}
}

func TestSingleNodeCluster(t *testing.T) {
	nw := newNetwork(t, 1)
	nw.stabilize()
	idx, _ := nw.propose("n1", "solo")
	nw.stabilize()
	r := nw.nodes["n1"]
	if r.Committed() < idx || r.AckIndex(1) < idx {
		t.Fatalf("single node: committed %d ack %d, want >= %d", r.Committed(), r.AckIndex(1), idx)
	}
	// Restart: it elects itself.
	nw.restart("n1", 7)
	nw.tick(25)
	if nw.leader() != "n1" {
		t.Fatalf("restarted single node is not master")
	}
}

func TestLeadershipTransfer(t *testing.T) {
	nw := newNetwork(t, 3)
	nw.stabilize()
	nw.propose("n1", "a")
	nw.stabilize()
	to := nw.nodes["n1"].TransferLeadership("")
	if to == "" {
		t.Fatal("no transfer target")
	}
	nw.stabilize()
	if got := nw.leader(); got != to {
		t.Fatalf("leader after transfer = %q, want %q", got, to)
	}
}

// A bootstrapping master whose sentinels have not started yet stays master
// (nobody else could be) but refuses writes until a majority answers; once
// the cluster formed, losing the majority makes it step down (CheckQuorum).
func TestBootstrapMasterWaitsForItsSentinels(t *testing.T) {
	nw := newNetwork(t, 3)
	nw.down["n2"], nw.down["n3"] = true, true
	nw.tick(50)
	r := nw.nodes["n1"]
	if r.Role() != Leader {
		t.Fatalf("bootstrap master stepped down before its sentinels ever answered: %v", r.Role())
	}
	if _, _, err := r.Propose([]byte("x"), "", 0); err != ErrNoQuorum {
		t.Fatalf("Propose without a quorum: err %v, want ErrNoQuorum", err)
	}
	delete(nw.down, "n2")
	nw.tick(5)
	if _, _, err := r.Propose([]byte("x"), "", 0); err != nil {
		t.Fatalf("Propose with a quorum: %v", err)
	}
	nw.stabilize()
	nw.down["n2"] = true
	nw.tick(30)
	if r.Role() == Leader {
		t.Fatalf("master kept leadership after losing its majority")
	}
}

func (nw *network) addNode(id string) {
	s := &MemStorage{}
	nw.disks[id] = s
	nw.ids = append(nw.ids, id)
	nw.nodes[id] = New(testConfig(id, s, uint64(len(nw.ids))))
}

func withMember(cc protocol.Config, m protocol.Member) protocol.Config {
	out := protocol.Config{Members: append([]protocol.Member(nil), cc.Members...)}
	for i := range out.Members {
		if out.Members[i].ID == m.ID {
			out.Members[i] = m
			return out
		}
	}
	out.Members = append(out.Members, m)
	return out
}

func withoutMember(cc protocol.Config, id string) protocol.Config {
	var out protocol.Config
	for _, m := range cc.Members {
		if m.ID != id {
			out.Members = append(out.Members, m)
		}
	}
	return out
}

// Reference: Raft thesis §4.1 (one server at a time), §4.2.1 (learners
// catch up before they vote), §4.2.2 (removing the leader).
func TestJoinAsLearnerThenVoterThenRemoveMaster(t *testing.T) {
	nw := newNetwork(t, 3)
	nw.stabilize()
	for i := 0; i < 20; i++ {
		nw.propose("n1", fmt.Sprintf("old-%d", i))
	}
	nw.stabilize()
	nw.addNode("n4")
	r := nw.nodes["n1"]
	next := withMember(r.Membership(), protocol.Member{ID: "n4", GRPC: "n4:9090"})
	if _, err := r.ProposeConfChange(next); err != nil {
		t.Fatalf("add learner: %v", err)
	}
	// A second change while the first is uncommitted is refused.
	if _, err := r.ProposeConfChange(withoutMember(next, "n3")); err != ErrChangePending {
		t.Fatalf("second change while pending: %v, want ErrChangePending", err)
	}
	nw.tick(5)
	if got := r.Voters(); got != 4 {
		t.Fatalf("voters after the learner caught up = %d, want 4 (promoted)", got)
	}
	if got, want := messages(nw.disks["n4"]), messages(nw.disks["n1"]); !slices.Equal(got, want) {
		t.Fatalf("n4 holds %d messages, master %d", len(got), len(want))
	}
	// Two changes at once are refused.
	two := withoutMember(withoutMember(r.Membership(), "n2"), "n3")
	if _, err := r.ProposeConfChange(two); err == nil {
		t.Fatal("removing two members at once was accepted")
	}
	// Remove the master itself: it hands over and steps down.
	if _, err := r.ProposeConfChange(withoutMember(r.Membership(), "n1")); err != nil {
		t.Fatalf("remove master: %v", err)
	}
	nw.tick(40)
	lead := nw.leader()
	if lead == "" || lead == "n1" {
		t.Fatalf("leader after removing n1 = %q", lead)
	}
	if got := nw.nodes[lead].Voters(); got != 3 {
		t.Fatalf("voters after removing n1 = %d, want 3", got)
	}
	nw.propose(lead, "after")
	nw.stabilize()
	if got := nw.nodes[lead].Committed(); got != nw.nodes[lead].LastIndex() {
		t.Fatalf("new master did not commit: %d of %d", got, nw.nodes[lead].LastIndex())
	}
}

func TestRemovalRefusedWithoutLiveMajority(t *testing.T) {
	nw := newNetwork(t, 3)
	nw.stabilize()
	nw.down["n3"] = true
	nw.tick(15) // n3 silent for an election timeout
	r := nw.nodes["n1"]
	// Removing the live n2 would leave {n1, n3} with n3 dead: no live majority.
	if _, err := r.ProposeConfChange(withoutMember(r.Membership(), "n2")); err != ErrNoLiveMajority {
		t.Fatalf("remove n2 with n3 dead: %v, want ErrNoLiveMajority", err)
	}
	// Removing the dead n3 is fine.
	if _, err := r.ProposeConfChange(withoutMember(r.Membership(), "n3")); err != nil {
		t.Fatalf("remove dead n3: %v", err)
	}
}

func TestForceReconfigure(t *testing.T) {
	nw := newNetwork(t, 3)
	nw.stabilize()
	nw.propose("n1", "a")
	nw.stabilize()
	nw.down["n1"], nw.down["n2"] = true, true
	nw.tick(40)
	r := nw.nodes["n3"]
	if nw.leader() != "" {
		t.Fatal("a master without a majority")
	}
	if err := r.ForceReconfigure([]string{"n3"}); err != nil {
		t.Fatal(err)
	}
	nw.stabilize()
	if r.Role() != Leader || r.Voters() != 1 {
		t.Fatalf("after force-reconfigure: role %v voters %d", r.Role(), r.Voters())
	}
	nw.propose("n3", "b")
	nw.stabilize()
	if got, want := messages(nw.disks["n3"]), []string{"1:a", "2:b"}; !slices.Equal(got, want) {
		t.Fatalf("n3 holds %v, want %v", got, want)
	}
}

// An append that starts inside what the follower knows is committed (the
// master re-sending from an older point while probing, its earlier
// acknowledgement still on the way) is not answered with the commit index
// alone: the follower takes the entries past it and acknowledges them, so
// no round trip is lost. (Seen with REPLICATION_DELAY: the first
// writeConcern 3 insert after start waited twice the delay.)
func TestAppendBelowCommitTakesTheRest(t *testing.T) {
	nw := newNetwork(t, 3)
	nw.stabilize()
	for i := 1; i <= 3; i++ {
		nw.propose("n1", fmt.Sprintf("m%d", i))
	}
	nw.stabilize()
	nw.tick(1) // a heartbeat tells the followers the commit index
	f := nw.nodes["n3"]
	commit := f.Committed()
	if commit < 3 {
		t.Fatalf("n3 knows commit %d, want at least 3", commit)
	}
	nw.cut["n3"] = true
	nw.propose("n1", "m4")
	nw.propose("n1", "m5")
	nw.stabilize()
	ldr := nw.nodes["n1"]
	last, had := ldr.LastIndex(), f.LastIndex()
	if had >= last {
		t.Fatalf("n3 already holds %d of %d", had, last)
	}
	// The master's append from index 2 on: prev 1 is below n3's commit.
	prevTerm, _ := ldr.LogTerm(1)
	ents, err := ldr.Entries(2, last+1, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	f.Step(protocol.Message{From: "n1", To: "n3", Term: ldr.Term(), Type: protocol.MsgApp,
		Index: 1, LogTerm: prevTerm, Entries: ents, Commit: ldr.Committed()})
	rd := f.Ready()
	if n := len(rd.Entries); n == 0 || rd.Entries[n-1].Index != last {
		t.Fatalf("n3 appended %d entries (up to %v), want up to index %d", n, rd.Entries, last)
	}
	if rd.Entries[0].Index != had+1 {
		t.Fatalf("n3 appended from index %d, want %d (what it lacked)", rd.Entries[0].Index, had+1)
	}
	d := nw.disks["n3"]
	d.Append(rd.Entries)
	d.Sync()
	f.Persisted(last, rd.Entries[len(rd.Entries)-1].Term)
	var acked uint64
	for _, m := range append(f.Ready().AfterPersist, rd.AfterPersist...) {
		if m.Type == protocol.MsgAppResp && !m.Reject {
			acked = max(acked, m.Index)
		}
	}
	if acked != last {
		t.Fatalf("n3 acknowledged up to %d, want %d", acked, last)
	}
	if got, want := messages(d), []string{"1:m1", "2:m2", "3:m3", "4:m4", "5:m5"}; !slices.Equal(got, want) {
		t.Fatalf("n3 holds %v, want %v", got, want)
	}
}
