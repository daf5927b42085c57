package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"

	"github.com/replog/replog/pkg/protocol"
	replpb "github.com/replog/replog/proto"
)

const (
	backoffMin       = 20 * time.Millisecond
	backoffMax       = time.Second
	handshakeTimeout = 5 * time.Second

	// Stream header keys the server sets once it accepted a Hello.
	mdAccepted = "replog-accepted"
	mdHTTP     = "replog-http"
)

var errAddrChanged = errors.New("transport: peer address changed")

type connState uint8

const (
	stateNew connState = iota
	stateUp
	stateDown
)

// dialOptions are the options of every outbound ClientConn.
func dialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMsgSize), grpc.MaxCallSendMsgSize(maxMsgSize)),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 5 * time.Second, Timeout: 3 * time.Second, PermitWithoutStream: true}),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: backoffMin, Multiplier: 2, Jitter: 0.2, MaxDelay: backoffMax},
			MinConnectTimeout: 2 * time.Second,
		}),
		grpc.WithInitialWindowSize(1 << 20),
		grpc.WithInitialConnWindowSize(4 << 20),
	}
}

// runSender owns p's connection: it (re)connects with exponential backoff and
// drains p.queue into the stream until p or the Transport is stopped.
func (t *Transport) runSender(p *peer) {
	var (
		conn     *grpc.ClientConn
		connAddr string
		delay    = backoffMin
	)
	defer func() {
		if conn != nil {
			_ = conn.Close()
		}
		p.connected.Store(false)
	}()
	for p.ctx.Err() == nil {
		addr := t.peerAddr(p)
		var err error
		if conn == nil || connAddr != addr {
			if conn != nil {
				_ = conn.Close()
				conn = nil
			}
			conn, err = grpc.NewClient(addr, dialOptions()...)
			if err != nil {
				err = fmt.Errorf("transport: dial %s: %w", addr, err)
			} else {
				connAddr = addr
			}
		}
		var up bool
		if err == nil {
			up, err = t.runStream(p, conn, addr)
		}
		if p.ctx.Err() != nil {
			return
		}
		if up {
			delay = backoffMin
		}
		if errors.Is(err, errAddrChanged) {
			p.connected.Store(false)
			p.state = stateNew
			t.log.Info().Str("peer", p.id).Str("old", addr).Str("new", t.peerAddr(p)).Msg("peer address changed; reconnecting")
			continue
		}
		t.streamFailed(p, addr, err)
		// Jitter in [0.75, 1.25) of delay.
		d := time.Duration(float64(delay) * (0.75 + rand.Float64()/2))
		delay = min(2*delay, backoffMax)
		tm := time.NewTimer(d)
		select {
		case <-p.ctx.Done():
			tm.Stop()
			return
		case <-p.addrCh:
			tm.Stop()
		case <-tm.C:
		}
	}
}

// streamFailed records err and logs the transition to disconnected once.
func (t *Transport) streamFailed(p *peer, addr string, err error) {
	if err == nil {
		err = errors.New("transport: stream closed")
	}
	p.connected.Store(false)
	p.lastErr.Store(&errRecord{msg: err.Error(), at: time.Now()})
	switch p.state {
	case stateNew:
		t.log.Info().Str("peer", p.id).Str("addr", addr).Err(err).Msg("cannot connect to peer yet; retrying with backoff")
	case stateUp:
		t.log.Warn().Str("peer", p.id).Str("addr", addr).Err(err).Msg("peer disconnected; retrying with backoff")
	}
	p.state = stateDown
}

// runStream opens one stream on conn, sends the Hello, waits for the peer to
// accept it and then sends batches until the stream fails. up reports
// whether the handshake succeeded.
func (t *Transport) runStream(p *peer, conn *grpc.ClientConn, addr string) (up bool, err error) {
	ctx, cancel := context.WithCancel(p.ctx)
	defer cancel()
	st, err := replpb.NewReplicationClient(conn).Stream(ctx)
	if err != nil {
		return false, err
	}
	if err := st.Send(&replpb.Envelope{Hello: t.hello()}); err != nil {
		return false, recvErr(st, err)
	}
	timer := time.AfterFunc(handshakeTimeout, cancel)
	md, err := st.Header()
	if !timer.Stop() {
		return false, fmt.Errorf("transport: handshake with %s timed out", addr)
	}
	if err != nil {
		return false, err
	}
	if len(md.Get(mdAccepted)) == 0 {
		// Rejected: the status tells why.
		return false, recvErr(st, io.EOF)
	}
	if h := md.Get(mdHTTP); len(h) > 0 {
		t.learnHTTP(p.id, h[0])
	}
	p.connected.Store(true)
	if p.state != stateUp {
		t.log.Info().Str("peer", p.id).Str("addr", addr).Msg("peer connected")
		p.state = stateUp
	}

	// The server only answers when the stream ends; watching for that
	// notices a dead stream while we have nothing to send.
	done := make(chan error, 1)
	go func() { done <- st.RecvMsg(new(replpb.StreamAck)) }()
	defer func() {
		cancel()
		if done != nil {
			<-done
		}
	}()

	b := &batcher{env: new(replpb.Envelope)}
	for {
		select {
		case <-ctx.Done():
			return true, ctx.Err()
		case err := <-done:
			done = nil
			if err == nil {
				err = errors.New("transport: stream closed by peer")
			}
			return true, err
		case <-p.addrCh:
			return true, errAddrChanged
		case m := <-p.queue:
			n := b.fill(m, p.queue)
			err := st.Send(b.env)
			b.reset()
			if err != nil {
				p.dropped.Add(uint64(n))
				if errors.Is(err, io.EOF) {
					err = <-done
					done = nil
					if err == nil {
						err = errors.New("transport: stream closed by peer")
					}
				}
				return true, err
			}
			p.sent.Add(uint64(n))
		}
	}
}

// recvErr turns a send error into the stream's status when the stream
// ended (Send reports io.EOF and RecvMsg the real error).
func recvErr(st grpc.ClientStream, err error) error {
	if !errors.Is(err, io.EOF) {
		return err
	}
	if rerr := st.RecvMsg(new(replpb.StreamAck)); rerr != nil && !errors.Is(rerr, io.EOF) {
		return rerr
	}
	return errors.New("transport: stream closed by peer")
}

// batcher builds Envelopes, reusing the protobuf structs between batches.
type batcher struct {
	env  *replpb.Envelope
	pool []*replpb.Message // messages of earlier batches, for reuse
}

// fill puts first and then whatever else q holds, up to maxBatchBytes, into
// b.env and returns the number of messages.
func (b *batcher) fill(first protocol.Message, q <-chan protocol.Message) int {
	size := b.add(&first)
	for size < maxBatchBytes {
		var m protocol.Message
		select {
		case m = <-q:
		default:
			return len(b.env.Msgs)
		}
		size += b.add(&m)
	}
	return len(b.env.Msgs)
}

func (b *batcher) add(m *protocol.Message) int {
	i := len(b.env.Msgs)
	var pm *replpb.Message
	if i < len(b.pool) {
		pm = b.pool[i]
	} else {
		pm = new(replpb.Message)
		b.pool = append(b.pool, pm)
	}
	fillPBMessage(pm, m)
	b.env.Msgs = append(b.env.Msgs, pm)
	size := msgOverhead
	for i := range m.Entries {
		size += m.Entries[i].Size()
	}
	return size
}

// reset empties the envelope after a send. gRPC has encoded it by then.
func (b *batcher) reset() {
	for _, pm := range b.env.Msgs {
		releasePBMessage(pm)
	}
	clear(b.env.Msgs)
	b.env.Msgs = b.env.Msgs[:0]
}
