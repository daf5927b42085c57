// Package transport carries Raft messages between replog nodes over gRPC.
//
// Every node opens one outbound client stream to each peer it knows and only
// sends on it; a peer's answers arrive on the peer's own outbound stream to
// us. The first Envelope of a stream carries a Hello naming the sender, so the
// receiver learns the sender's addresses and can answer a node it was never
// told about.
//
// Send never blocks: each peer has a bounded queue drained by one sender
// goroutine, which batches whatever is queued into one Envelope. A full queue,
// an unknown peer or a broken stream drop messages, which Raft tolerates.
package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/replog/replog/pkg/protocol"
	replpb "github.com/replog/replog/proto"
)

const (
	// DefaultQueueLen is the per-peer outbound queue length.
	DefaultQueueLen = 4096
	// maxMsgSize bounds one gRPC message either way.
	maxMsgSize = 64 << 20
	// maxBatchBytes bounds the estimated size of one Envelope (a single
	// larger message still goes alone).
	maxBatchBytes = 4 << 20
	// msgOverhead is the estimated encoded size of a message without entries.
	msgOverhead = 64
)

// Config configures a Transport.
type Config struct {
	// ID, AdvertiseGRPC and AdvertiseHTTP are sent in the Hello of every
	// outbound stream. An empty AdvertiseGRPC defaults to Addr() after Start;
	// a receiver replaces an empty or unspecified host (":9090",
	// "0.0.0.0:9090") with the IP the stream came from.
	ID, AdvertiseGRPC, AdvertiseHTTP string
	// Listen is the gRPC listen address, e.g. ":9090" or "127.0.0.1:0".
	Listen string
	// Token is the cluster token. When non-empty, inbound streams whose Hello
	// carries another token are rejected with codes.Unauthenticated, and our
	// Hellos carry it.
	Token string
	// QueueLen is the per-peer outbound queue length in messages; 0 means
	// DefaultQueueLen.
	QueueLen int
	// Logger receives connection state changes. The zero Logger is silent.
	Logger zerolog.Logger
}

// Peer is an address book entry.
type Peer struct {
	ID   string
	GRPC string
	HTTP string
}

// Handler receives the messages of one inbound Envelope. It is called on the
// stream's server goroutine, in arrival order per sending peer, and must not
// block long. It owns msgs.
type Handler func(from Peer, msgs []protocol.Message)

// PeerStats describes the traffic with one peer.
type PeerStats struct {
	Peer
	// Known is false for an id we dropped messages for but have no entry.
	Known bool
	// Sent counts messages handed to the stream, Dropped messages lost to a
	// full queue, an unknown address or a failed send, Received messages
	// delivered to the Handler from this peer.
	Sent, Dropped, Received uint64
	// Queued is the current outbound queue length.
	Queued int
	// Connected reports whether the outbound stream is up.
	Connected bool
	// LastError is the last outbound stream error, empty if none yet.
	LastError   string
	LastErrorAt time.Time
}

// Transport is one node's end of the message transport. Its methods are safe
// for concurrent use. A Transport is started once and stopped once.
type Transport struct {
	cfg     Config
	handler Handler
	log     zerolog.Logger

	ctx    context.Context // cancelled by Stop
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine we start

	mu       sync.RWMutex
	peers    map[string]*peer
	unknown  map[string]uint64   // drops to ids without an entry
	rejected map[string]struct{} // ids whose streams we rejected, logged once
	stopped  bool
	started  bool
	server   *grpc.Server
	addr     string
	helloMsg *replpb.Hello
}

// New returns a Transport that delivers inbound messages to h. It does not
// listen until Start.
func New(cfg Config, h Handler) *Transport {
	if cfg.QueueLen <= 0 {
		cfg.QueueLen = DefaultQueueLen
	}
	if h == nil {
		h = func(Peer, []protocol.Message) {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Transport{
		cfg:      cfg,
		handler:  h,
		log:      cfg.Logger.With().Str("component", "transport").Logger(),
		ctx:      ctx,
		cancel:   cancel,
		peers:    make(map[string]*peer),
		unknown:  make(map[string]uint64),
		rejected: make(map[string]struct{}),
	}
}

// Start listens on cfg.Listen and serves inbound streams in a goroutine.
func (t *Transport) Start() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return errors.New("transport: start after stop")
	}
	if t.started {
		return errors.New("transport: already started")
	}
	lis, err := net.Listen("tcp", t.cfg.Listen)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("transport: grpc port %s in use: %w", t.cfg.Listen, err)
		}
		return fmt.Errorf("transport: listen on %s: %w", t.cfg.Listen, err)
	}
	t.started = true
	t.addr = lis.Addr().String()
	t.helloMsg = nil // AdvertiseGRPC may now default to addr
	t.server = grpc.NewServer(
		grpc.MaxRecvMsgSize(maxMsgSize),
		grpc.MaxSendMsgSize(maxMsgSize),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 10 * time.Second, Timeout: 5 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 2 * time.Second, PermitWithoutStream: true}),
		grpc.InitialWindowSize(1<<20),
		grpc.InitialConnWindowSize(4<<20),
		grpc.WaitForHandlers(true),
	)
	replpb.RegisterReplicationServer(t.server, &server{t: t})
	srv := t.server
	t.wg.Go(func() {
		if err := srv.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			t.log.Error().Err(err).Msg("grpc server stopped")
		}
	})
	t.log.Info().Str("addr", t.addr).Msg("transport listening")
	return nil
}

// Addr is the actual listen address, empty before Start.
func (t *Transport) Addr() string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.addr
}

// hello returns the Hello for outbound streams.
func (t *Transport) hello() *replpb.Hello {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.helloMsg == nil {
		g := t.cfg.AdvertiseGRPC
		if g == "" {
			g = t.addr
		}
		t.helloMsg = &replpb.Hello{Id: t.cfg.ID, Grpc: g, Http: t.cfg.AdvertiseHTTP, ClusterToken: t.cfg.Token}
	}
	return t.helloMsg
}

// SetPeer adds a peer or changes its gRPC address. An address set here
// overrides what Hellos from the peer announce. An empty address is ignored.
func (t *Transport) SetPeer(id, grpcAddr string) {
	if id == "" || grpcAddr == "" {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return
	}
	p := t.peers[id]
	if p == nil {
		p = t.newPeerLocked(id)
	}
	p.pinned = true
	t.setAddrLocked(p, grpcAddr)
}

// learn records the addresses announced by an inbound Hello.
func (t *Transport) learn(h Peer) {
	if h.ID == "" {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return
	}
	p := t.peers[h.ID]
	if p == nil {
		p = t.newPeerLocked(h.ID)
	}
	if h.HTTP != "" {
		p.http = h.HTTP
	}
	if !p.pinned && h.GRPC != "" {
		t.setAddrLocked(p, h.GRPC)
	}
}

// learnHTTP records a peer's HTTP address announced in a stream header.
func (t *Transport) learnHTTP(id, http string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p := t.peers[id]; p != nil && http != "" {
		p.http = http
	}
}

// newPeerLocked creates an address book entry without address or sender.
func (t *Transport) newPeerLocked(id string) *peer {
	p := &peer{id: id, addrCh: make(chan struct{}, 1)}
	p.ctx, p.cancel = context.WithCancel(t.ctx)
	if n := t.unknown[id]; n > 0 {
		p.dropped.Add(n)
		delete(t.unknown, id)
	}
	t.peers[id] = p
	return p
}

// setAddrLocked sets p's gRPC address, starting its sender the first time
// and telling a running sender to reconnect when the address changed.
func (t *Transport) setAddrLocked(p *peer, addr string) {
	if p.grpc == addr {
		return
	}
	p.grpc = addr
	if p.queue == nil {
		p.queue = make(chan protocol.Message, t.cfg.QueueLen)
		t.wg.Go(func() { t.runSender(p) })
		return
	}
	select {
	case p.addrCh <- struct{}{}:
	default:
	}
}

// peerAddr returns p's current gRPC address.
func (t *Transport) peerAddr(p *peer) string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return p.grpc
}

// RemovePeer forgets a peer, stops its sender and drops its queue. A later
// Hello from it adds it again.
func (t *Transport) RemovePeer(id string) {
	t.mu.Lock()
	p := t.peers[id]
	delete(t.peers, id)
	t.mu.Unlock()
	if p != nil {
		p.cancel()
	}
}

// Peer returns the address book entry of id.
func (t *Transport) Peer(id string) (Peer, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	p := t.peers[id]
	if p == nil {
		return Peer{}, false
	}
	return Peer{ID: id, GRPC: p.grpc, HTTP: p.http}, true
}

// Send queues each message for its To peer without blocking. A message to an
// unknown peer (or one without a gRPC address) or to a full queue is dropped
// and counted. Queued messages share their Entries and Data with the caller,
// who must not modify them afterwards.
func (t *Transport) Send(msgs ...protocol.Message) {
	t.mu.RLock()
	var unknown []string
	for i := range msgs {
		to := msgs[i].To
		p := t.peers[to]
		if p == nil {
			unknown = append(unknown, to)
			continue
		}
		select {
		case p.queue <- msgs[i]: // a nil queue (no address yet) drops
		default:
			p.dropped.Add(1)
		}
	}
	t.mu.RUnlock()
	if len(unknown) > 0 {
		t.mu.Lock()
		for _, id := range unknown {
			if p := t.peers[id]; p != nil {
				p.dropped.Add(1)
			} else {
				t.unknown[id]++
			}
		}
		t.mu.Unlock()
	}
}

// Stats returns per-peer counters, keyed by peer id.
func (t *Transport) Stats() map[string]PeerStats {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make(map[string]PeerStats, len(t.peers)+len(t.unknown))
	for id, n := range t.unknown {
		out[id] = PeerStats{Peer: Peer{ID: id}, Dropped: n}
	}
	for id, p := range t.peers {
		s := PeerStats{
			Peer:      Peer{ID: id, GRPC: p.grpc, HTTP: p.http},
			Known:     true,
			Sent:      p.sent.Load(),
			Dropped:   p.dropped.Load(),
			Received:  p.received.Load(),
			Queued:    len(p.queue),
			Connected: p.connected.Load(),
		}
		if e := p.lastErr.Load(); e != nil {
			s.LastError, s.LastErrorAt = e.msg, e.at
		}
		out[id] = s
	}
	return out
}

// Stop closes the listener and every stream and waits for every goroutine
// the Transport started. The Handler is not called after Stop returns.
func (t *Transport) Stop() {
	t.mu.Lock()
	if t.stopped {
		t.mu.Unlock()
		return
	}
	t.stopped = true
	srv := t.server
	t.mu.Unlock()
	t.cancel()
	if srv != nil {
		srv.Stop()
	}
	t.wg.Wait()
}

// countReceived credits n inbound messages to peer id.
func (t *Transport) countReceived(id string, n int) {
	t.mu.RLock()
	p := t.peers[id]
	t.mu.RUnlock()
	if p != nil {
		p.received.Add(uint64(n))
	}
}

// peer is one address book entry and, once it has an address, its sender.
type peer struct {
	id string
	// Guarded by Transport.mu.
	grpc, http string
	pinned     bool                  // grpc set by SetPeer
	queue      chan protocol.Message // nil until the sender starts

	addrCh chan struct{} // grpc changed; reconnect
	ctx    context.Context
	cancel context.CancelFunc

	sent, dropped, received atomic.Uint64
	connected               atomic.Bool
	lastErr                 atomic.Pointer[errRecord]
	state                   connState // owned by the sender goroutine
}

type errRecord struct {
	msg string
	at  time.Time
}
