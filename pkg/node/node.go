// Package node is replog's runtime: it owns every goroutine, timer, socket
// and file of a node and drives the deterministic core (pkg/replica) with
// them. One loop goroutine owns the core; a storage goroutine appends to the
// WAL and fsyncs (one fsync for everything that arrived during the last one:
// group commit); the transport's goroutines move messages; HTTP handlers talk
// to the loop through channels.
package node

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/replog/replog/pkg/api"
	"github.com/replog/replog/pkg/config"
	"github.com/replog/replog/pkg/protocol"
	"github.com/replog/replog/pkg/replica"
	"github.com/replog/replog/pkg/transport"
	"github.com/replog/replog/pkg/wal"
)

// Node is one running replog server.
type Node struct {
	cfg    config.Config
	log    zerolog.Logger
	id     string
	tick   time.Duration
	hbTick int

	wal  *wal.WAL
	tr   *transport.Transport
	http *http.Server
	ln   net.Listener

	// Owned by the loop goroutine.
	r       *replica.Replica
	waiters waitSet
	orphans []*waiter
	// electionTicksMax is the longest election timeout, in ticks.
	electionTicksMax int
	keys             map[string]keyRef
	// handedLast is the last index handed to storage.
	handedLast uint64
	// lastRole is the role seen after the previous loop iteration.
	lastRole replica.Role

	recvc    chan []protocol.Message
	propc    chan *proposal
	persistc chan persisted
	statusc  chan chan api.Status
	cancelc  chan *waiter
	transfc  chan chan string
	readc    chan readRequest
	confc    chan *confChange
	// catchUp samples each follower's match once a second (loop only).
	catchUp map[string]catchUpSample
	// leaderSeen is when a master was last known (Unix nanoseconds).
	leaderSeen atomic.Int64
	// readWaiters are linearizable reads waiting for their read index
	// (owned by the loop).
	readWaiters map[uint64]chan uint64
	readSeq     atomic.Uint64
	stopc       chan struct{}
	wg          sync.WaitGroup

	store *storeQueue

	// Read side, published by the loop and the storage goroutine.
	stable   atomic.Uint64 // highest durable index
	commit   atomic.Uint64
	truncGen atomic.Uint64
	voters   atomic.Int64
	view     atomic.Pointer[leaderView]

	metrics *metrics
	stopped atomic.Bool
}

// leaderView is what non-loop goroutines need to know about leadership.
type leaderView struct {
	role   replica.Role
	term   uint64
	leader string
	// changed is closed when a newer view replaces this one.
	changed chan struct{}
}

type keyRef struct{ index, msgID uint64 }

type persisted struct{ index, term uint64 }

// New opens the data directory and builds a node; Start runs it.
func New(cfg config.Config, log zerolog.Logger) (*Node, error) {
	n := &Node{
		cfg:         cfg,
		recvc:       make(chan []protocol.Message, 1024),
		propc:       make(chan *proposal, 4096),
		persistc:    make(chan persisted, 1024),
		statusc:     make(chan chan api.Status),
		cancelc:     make(chan *waiter, 1024),
		transfc:     make(chan chan string),
		readc:       make(chan readRequest, 256),
		confc:       make(chan *confChange),
		readWaiters: map[uint64]chan uint64{},
		stopc:       make(chan struct{}),
		keys:        map[string]keyRef{},
		waiters:     waitSet{},
		catchUp:     map[string]catchUpSample{},
		store:       newStoreQueue(),
	}
	n.tick, n.hbTick = tickFor(cfg.HeartbeatInterval)

	dir := cfg.ResolvedDataDir()
	if err := config.CheckDataDir(dir); err != nil {
		return nil, err
	}
	id, err := loadIdentity(dir, cfg.ID())
	if err != nil {
		return nil, err
	}
	n.id = id
	n.log = log.With().Str("node", id).Logger()

	w, err := wal.Open(wal.Options{Dir: filepath.Join(dir, "wal"), NoSync: cfg.Fsync == "never", Logger: n.log})
	if err != nil {
		return nil, fmt.Errorf("node: open log in %s: %w", dir, err)
	}
	n.wal = w
	rc, err := n.recover()
	if err != nil {
		w.Close()
		return nil, err
	}
	n.r = replica.New(rc)
	n.electionTicksMax = rc.ElectionTicksMax
	n.handedLast = w.LastIndex()
	n.lastRole = n.r.Role()
	n.stable.Store(w.LastIndex())
	n.metrics = newMetrics()
	n.publish()
	return n, nil
}

// tickFor picks the loop's tick: at most 10 ms, and a whole fraction of the
// heartbeat interval.
func tickFor(hb time.Duration) (time.Duration, int) {
	ticks := int((hb + 10*time.Millisecond - 1) / (10 * time.Millisecond))
	if ticks < 1 {
		ticks = 1
	}
	return hb / time.Duration(ticks), ticks
}

// recover scans the stored log once: memberships, the last message id and
// the idempotency keys, and builds the core's configuration.
func (n *Node) recover() (replica.Config, error) {
	cfg := n.cfg
	ticks := func(d time.Duration) int { return int((d + n.tick - 1) / n.tick) }
	rc := replica.Config{
		ID:                  n.id,
		Storage:             n.wal,
		HardState:           n.wal.HardState(),
		HeartbeatTicks:      n.hbTick,
		ElectionTicks:       ticks(cfg.ElectionTimeoutMin),
		ElectionTicksMax:    ticks(cfg.ElectionTimeoutMax) + 1,
		MaxMissedHeartbeats: cfg.MaxMissedHeartbeats,
		MaxMsgBytes:         1 << 20,
		MaxInflight:         256,
		MaxInflightBytes:    8 << 20,
		Rand:                rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(os.Getpid()))),
	}
	last := n.wal.LastIndex()
	for i := uint64(1); i <= last; {
		ents, err := n.wal.Entries(i, min(last+1, i+1024), 4<<20)
		if err != nil {
			return rc, fmt.Errorf("node: scan log at %d: %w", i, err)
		}
		for _, e := range ents {
			switch e.Type {
			case protocol.EntryConfig:
				cc, err := protocol.DecodeConfig(e.Data)
				if err != nil {
					return rc, fmt.Errorf("node: entry %d: %w", e.Index, err)
				}
				rc.Configs = append(rc.Configs, replica.IndexedConfig{Index: e.Index, Config: cc})
			case protocol.EntryNormal:
				if e.Key != "" {
					n.keys[e.Key] = keyRef{e.Index, e.MsgID}
				}
			}
			rc.LastMsgID = e.MsgID
		}
		i += uint64(len(ents))
	}
	if last == 0 && rc.HardState.IsEmpty() && cfg.Role == "master" {
		cc := protocol.Config{Members: []protocol.Member{{ID: n.id, GRPC: n.advertiseGRPC(), HTTP: n.advertiseHTTP(), Voter: true}}}
		for _, s := range cfg.Sentinels {
			id, addr, err := config.ParseSentinel(s)
			if err != nil {
				return rc, fmt.Errorf("node: SENTINELS entry %q: %w", s, err)
			}
			if id == "" {
				// A sentinel's default id is its advertised gRPC address.
				id = addr
			}
			cc.Members = append(cc.Members, protocol.Member{ID: id, GRPC: addr, Voter: true})
		}
		rc.Bootstrap = &cc
		n.log.Info().Int("members", len(cc.Members)).Msg("bootstrapping a new cluster as master")
	}
	return rc, nil
}

func (n *Node) advertiseGRPC() string {
	return net.JoinHostPort(n.cfg.AdvertiseHost, strconv.Itoa(n.cfg.GRPCPort))
}

func (n *Node) advertiseHTTP() string {
	return net.JoinHostPort(n.cfg.AdvertiseHost, strconv.Itoa(n.cfg.Port))
}

// loadIdentity keeps a node's id stable across restarts: the first start
// writes it to DATA_DIR/id; a later start with another SERVER_ID is refused,
// since the cluster knows this data under the stored id.
func loadIdentity(dir, want string) (string, error) {
	p := filepath.Join(dir, "id")
	b, err := os.ReadFile(p)
	switch {
	case err == nil:
		got := strings.TrimSpace(string(b))
		if got != want {
			return "", fmt.Errorf("node: %s belongs to node %q, but this node is %q (SERVER_ID/ADVERTISE_HOST/GRPC_PORT changed?)", dir, got, want)
		}
		return got, nil
	case errors.Is(err, os.ErrNotExist):
		tmp := p + ".tmp"
		if err := os.WriteFile(tmp, []byte(want+"\n"), 0o644); err != nil {
			return "", fmt.Errorf("node: write identity: %w", err)
		}
		if err := os.Rename(tmp, p); err != nil {
			return "", fmt.Errorf("node: write identity: %w", err)
		}
		return want, nil
	default:
		return "", fmt.Errorf("node: read identity: %w", err)
	}
}

// Start binds the ports and runs the node until Stop.
func (n *Node) Start() error {
	ln, err := net.Listen("tcp", net.JoinHostPort("", strconv.Itoa(n.cfg.Port)))
	if err != nil {
		n.wal.Close()
		return fmt.Errorf("node: http port %d: %w", n.cfg.Port, err)
	}
	n.ln = ln
	n.tr = transport.New(transport.Config{
		ID:            n.id,
		AdvertiseGRPC: n.advertiseGRPC(),
		AdvertiseHTTP: n.advertiseHTTP(),
		Listen:        net.JoinHostPort("", strconv.Itoa(n.cfg.GRPCPort)),
		Token:         n.cfg.ClusterToken,
		Logger:        n.log,
	}, n.receive)
	if err := n.tr.Start(); err != nil {
		ln.Close()
		n.wal.Close()
		return err
	}
	n.syncPeers()

	h := api.NewHandler(n, api.Options{
		MaxBodyBytes: n.cfg.MaxBodyBytes,
		Logger:       n.log,
		Registry:     n.metrics.reg,
		// While leadership moves, a sentinel keeps looking for the master
		// for about one election before answering 503.
		ForwardRetry: 2 * n.cfg.ElectionTimeoutMax,
	})
	n.http = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}

	if len(n.cfg.Peers) > 0 && n.wal.LastIndex() == 0 && n.wal.HardState().IsEmpty() {
		n.wg.Add(1)
		go func() { defer n.wg.Done(); n.joinLoop() }()
	}
	n.wg.Add(3)
	go func() { defer n.wg.Done(); n.run() }()
	go func() { defer n.wg.Done(); n.runStorage() }()
	go func() {
		defer n.wg.Done()
		if err := n.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error().Err(err).Msg("http server stopped")
		}
	}()
	n.log.Info().Str("http", ln.Addr().String()).Str("grpc", n.tr.Addr()).
		Str("role", n.r.Role().String()).Uint64("term", n.r.Term()).Uint64("last_index", n.wal.LastIndex()).
		Msg("replog node started")
	return nil
}

// HTTPAddr is the bound HTTP address.
func (n *Node) HTTPAddr() string { return n.ln.Addr().String() }

// ID is the node's id.
func (n *Node) ID() string { return n.id }

// Shutdown stops the node gracefully: a master first hands its leadership
// to the most up-to-date sentinel, so clients see no failed request; then
// in-flight HTTP requests finish (bounded by ctx) and everything stops.
func (n *Node) Shutdown(ctx context.Context) {
	if to := n.transferLeadership(); to != "" {
		n.log.Info().Str("to", to).Msg("handing leadership over before shutdown")
		deadline := time.Now().Add(n.cfg.ElectionTimeoutMax * 2)
		for time.Now().Before(deadline) {
			if v := n.view.Load(); v.role != replica.Leader && v.leader != "" && v.leader != n.id {
				n.log.Info().Str("master", v.leader).Msg("leadership handed over")
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	if n.http != nil {
		// In-flight requests finish (orphaned inserts are answered within
		// two election timeouts); connections that never sent a request
		// would hold Shutdown for 5 s, so it is bounded.
		sctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond+2*n.cfg.ElectionTimeoutMax)
		if err := n.http.Shutdown(sctx); err != nil {
			n.log.Debug().Err(err).Msg("http shutdown: closing the remaining connections")
		}
		cancel()
	}
	n.Stop()
}

// Stop stops the node at once (in-flight requests are cut) and waits for
// every goroutine it started. Safe to call twice.
func (n *Node) Stop() {
	if n.stopped.Swap(true) {
		return
	}
	close(n.stopc)
	if n.http != nil {
		n.http.Close()
	}
	n.store.close()
	n.wg.Wait()
	if n.tr != nil {
		n.tr.Stop()
	}
	if err := n.wal.Close(); err != nil {
		n.log.Warn().Err(err).Msg("close log")
	}
	n.log.Info().Msg("replog node stopped")
}

// receive is the transport's handler: messages from one peer, in order.
func (n *Node) receive(from transport.Peer, msgs []protocol.Message) {
	select {
	case n.recvc <- msgs:
	case <-n.stopc:
	}
}

// syncPeers tells the transport every member's gRPC address.
func (n *Node) syncPeers() {
	for _, m := range n.r.Membership().Members {
		if m.ID != n.id && m.GRPC != "" {
			n.tr.SetPeer(m.ID, m.GRPC)
		}
	}
}

func (n *Node) transferLeadership() string {
	ch := make(chan string, 1)
	select {
	case n.transfc <- ch:
	case <-n.stopc:
		return ""
	}
	select {
	case to := <-ch:
		return to
	case <-n.stopc:
		return ""
	}
}
