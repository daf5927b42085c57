package transport

import (
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/replog/replog/pkg/protocol"
)

const waitTimeout = 10 * time.Second

// recorder collects what a Transport's Handler receives.
type recorder struct {
	mu     sync.Mutex
	byFrom map[string][]protocol.Message
	peers  map[string]Peer
	notify chan struct{}
}

func newRecorder() *recorder {
	return &recorder{byFrom: map[string][]protocol.Message{}, peers: map[string]Peer{}, notify: make(chan struct{}, 1)}
}

func (r *recorder) handle(from Peer, msgs []protocol.Message) {
	r.mu.Lock()
	r.byFrom[from.ID] = append(r.byFrom[from.ID], msgs...)
	r.peers[from.ID] = from
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

func (r *recorder) from(id string) []protocol.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]protocol.Message(nil), r.byFrom[id]...)
}

// waitFor waits until at least n messages from id arrived.
func (r *recorder) waitFor(t *testing.T, id string, n int) []protocol.Message {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		if got := r.from(id); len(got) >= n {
			return got
		}
		select {
		case <-r.notify:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			t.Fatalf("timed out: %d of %d messages from %s", len(r.from(id)), n, id)
		}
	}
}

type node struct {
	*Transport
	rec *recorder
}

func testLogger(t *testing.T) zerolog.Logger {
	return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel)
}

func startNode(t *testing.T, id, token string, mod ...func(*Config)) *node {
	t.Helper()
	cfg := Config{ID: id, AdvertiseHTTP: "http-" + id, Listen: "127.0.0.1:0", Token: token, QueueLen: 1 << 15, Logger: testLogger(t)}
	for _, f := range mod {
		f(&cfg)
	}
	rec := newRecorder()
	tr := New(cfg, rec.handle)
	if err := tr.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.Stop)
	return &node{Transport: tr, rec: rec}
}

// msgs returns n MsgApp messages from->to whose Index counts from start.
func msgs(from, to string, start, n int) []protocol.Message {
	out := make([]protocol.Message, n)
	for i := range out {
		idx := uint64(start + i)
		out[i] = protocol.Message{Type: protocol.MsgApp, From: from, To: to, Term: 1, Index: idx,
			Entries: []protocol.Entry{{Index: idx + 1, Term: 1, Data: []byte(fmt.Sprint("payload-", idx))}}}
	}
	return out
}

func checkFIFO(t *testing.T, got []protocol.Message, from string, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("from %s: got %d messages, want %d", from, len(got), n)
	}
	for i, m := range got {
		if m.Index != uint64(i) || m.From != from || string(m.Entries[0].Data) != fmt.Sprint("payload-", i) {
			t.Fatalf("from %s: message %d is %s", from, i, m.Describe())
		}
	}
}

func TestTwoNodes(t *testing.T) {
	a := startNode(t, "a", "secret")
	b := startNode(t, "b", "secret")
	a.SetPeer("b", b.Addr())

	const n = 20000
	for _, m := range msgs("a", "b", 0, n) {
		a.Send(m) // one at a time, as Raft does
	}
	checkFIFO(t, b.rec.waitFor(t, "a", n), "a", n)

	// b was never told a's address: it learned it from the Hello.
	p, ok := b.Peer("a")
	if !ok || p.GRPC != a.Addr() || p.HTTP != "http-a" {
		t.Fatalf("b.Peer(a) = %+v, %v", p, ok)
	}
	b.Send(msgs("b", "a", 0, 100)...)
	checkFIFO(t, a.rec.waitFor(t, "b", 100), "b", 100)
	// a learned b's HTTP address from the stream header.
	if p, _ := a.Peer("b"); p.HTTP != "http-b" || p.GRPC != b.Addr() {
		t.Fatalf("a.Peer(b) = %+v", p)
	}
	a.rec.mu.Lock()
	hp := a.rec.peers["b"]
	a.rec.mu.Unlock()
	if hp.HTTP != "http-b" {
		t.Fatalf("handler saw %+v", hp)
	}
	st := a.Stats()["b"]
	if st.Sent != n || st.Dropped != 0 || !st.Connected || st.Received != 100 {
		t.Fatalf("a.Stats()[b] = %+v", st)
	}
}

func TestThreeNodes(t *testing.T) {
	a := startNode(t, "a", "")
	b := startNode(t, "b", "")
	c := startNode(t, "c", "")
	a.SetPeer("b", b.Addr())
	a.SetPeer("c", c.Addr())
	b.SetPeer("c", c.Addr())

	const n = 5000
	var wg sync.WaitGroup
	wg.Go(func() {
		for _, m := range msgs("a", "c", 0, n) {
			a.Send(m)
		}
	})
	wg.Go(func() {
		for _, m := range msgs("b", "c", 0, n) {
			b.Send(m)
		}
	})
	wg.Go(func() { a.Send(msgs("a", "b", 0, n)...) })
	wg.Wait()
	checkFIFO(t, c.rec.waitFor(t, "a", n), "a", n)
	checkFIFO(t, c.rec.waitFor(t, "b", n), "b", n)
	checkFIFO(t, b.rec.waitFor(t, "a", n), "a", n)

	// c answers both although it was told no address.
	c.Send(msgs("c", "a", 0, 10)...)
	c.Send(msgs("c", "b", 0, 10)...)
	checkFIFO(t, a.rec.waitFor(t, "c", 10), "c", 10)
	checkFIFO(t, b.rec.waitFor(t, "c", 10), "c", 10)
	for _, id := range []string{"a", "b"} {
		if p, _ := c.Peer(id); p.HTTP != "http-"+id {
			t.Fatalf("c.Peer(%s) = %+v", id, p)
		}
	}
}

func TestTokenMismatch(t *testing.T) {
	a := startNode(t, "a", "one")
	b := startNode(t, "b", "two")
	a.SetPeer("b", b.Addr())
	a.Send(msgs("a", "b", 0, 5)...)
	deadline := time.Now().Add(waitTimeout)
	for {
		st := a.Stats()["b"]
		if strings.Contains(st.LastError, "Unauthenticated") {
			if st.Connected {
				t.Fatalf("connected despite rejection: %+v", st)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no Unauthenticated error: %+v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	if got := b.rec.from("a"); len(got) != 0 {
		t.Fatalf("b accepted %d messages", len(got))
	}
	if _, ok := b.Peer("a"); ok {
		t.Fatal("b learned a peer from a rejected hello")
	}
}

func TestPeerRestart(t *testing.T) {
	a := startNode(t, "a", "")
	b := startNode(t, "b", "")
	addr := b.Addr()
	a.SetPeer("b", addr)
	a.Send(msgs("a", "b", 0, 10)...)
	b.rec.waitFor(t, "a", 10)

	b.Stop()
	waitConnected(t, a.Transport, "b", false)

	b2 := startNode(t, "b", "", func(c *Config) { c.Listen = addr })
	deadline := time.Now().Add(waitTimeout)
	for i := 0; len(b2.rec.from("a")) == 0; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("no message after restart; stats %+v", a.Stats()["b"])
		}
		a.Send(msgs("a", "b", i, 1)...)
		time.Sleep(10 * time.Millisecond)
	}
	waitConnected(t, a.Transport, "b", true)
	if _, ok := b2.Peer("a"); !ok {
		t.Fatal("restarted b did not learn a")
	}
}

func waitConnected(t *testing.T, tr *Transport, id string, want bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for tr.Stats()[id].Connected != want {
		if time.Now().After(deadline) {
			t.Fatalf("connected to %s never became %v: %+v", id, want, tr.Stats()[id])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestAddressChangeAndPin(t *testing.T) {
	// b announces a wrong gRPC address; a's SetPeer must win over it.
	b := startNode(t, "b", "", func(c *Config) { c.AdvertiseGRPC = "127.0.0.1:1" })
	a := startNode(t, "a", "")
	a.SetPeer("b", deadAddr(t))
	a.Send(msgs("a", "b", 0, 3)...)
	time.Sleep(50 * time.Millisecond)
	a.SetPeer("b", b.Addr()) // reconnect to the right address; queued messages follow
	checkFIFO(t, b.rec.waitFor(t, "a", 3), "a", 3)
	if p, _ := a.Peer("b"); p.GRPC != b.Addr() {
		t.Fatalf("a.Peer(b) = %+v", p)
	}
	// a Hello from b does not override the pinned address.
	b.SetPeer("a", a.Addr())
	b.Send(msgs("b", "a", 0, 1)...)
	a.rec.waitFor(t, "b", 1)
	if p, _ := a.Peer("b"); p.GRPC != b.Addr() {
		t.Fatalf("hello overrode pinned address: %+v", p)
	}
	a.RemovePeer("b")
	if _, ok := a.Peer("b"); ok {
		t.Fatal("RemovePeer kept the peer")
	}
}

// deadAddr returns a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestSendNeverBlocks(t *testing.T) {
	a := startNode(t, "a", "", func(c *Config) { c.QueueLen = 4 })
	start := time.Now()
	a.Send(protocol.Message{Type: protocol.MsgVote, To: "nobody"})
	a.Send(protocol.Message{Type: protocol.MsgVote, To: "nobody"})
	if st := a.Stats()["nobody"]; st.Dropped != 2 || st.Known {
		t.Fatalf("unknown peer stats %+v", st)
	}
	a.SetPeer("dead", deadAddr(t))
	a.Send(msgs("a", "dead", 0, 100)...)
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Send took %v", d)
	}
	st := a.Stats()["dead"]
	if st.Dropped < 96 || st.Sent != 0 {
		t.Fatalf("dead peer stats %+v", st)
	}
	// Earlier drops to an id carry over once it becomes known.
	a.SetPeer("nobody", deadAddr(t))
	if st := a.Stats()["nobody"]; st.Dropped != 2 || !st.Known {
		t.Fatalf("nobody stats after SetPeer %+v", st)
	}
}

func TestStartPortInUse(t *testing.T) {
	a := startNode(t, "a", "")
	b := New(Config{ID: "b", Listen: a.Addr()}, nil)
	err := b.Start()
	if err == nil || !strings.Contains(err.Error(), "in use") || !strings.HasPrefix(err.Error(), "transport: ") {
		t.Fatalf("Start on a used port: %v", err)
	}
	b.Stop()
}

func TestStopLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		var nodes []*Transport
		for _, id := range []string{"a", "b", "c"} {
			tr := New(Config{ID: id, Listen: "127.0.0.1:0"}, func(Peer, []protocol.Message) {})
			if err := tr.Start(); err != nil {
				t.Fatal(err)
			}
			nodes = append(nodes, tr)
		}
		for _, x := range nodes {
			for _, y := range nodes {
				if x != y {
					x.SetPeer(y.cfg.ID, y.Addr())
				}
			}
		}
		nodes[0].SetPeer("dead", deadAddr(t)) // a sender stuck in backoff
		for _, x := range nodes {
			for _, y := range nodes {
				x.Send(msgs(x.cfg.ID, y.cfg.ID, 0, 10)...)
			}
		}
		for _, x := range nodes {
			waitConnected(t, x, nodes[1].cfg.ID, x != nodes[1])
		}
		for _, x := range nodes {
			x.Stop()
			x.Stop() // idempotent
		}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines before, %d after Stop:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}
