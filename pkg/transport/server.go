package transport

import (
	"crypto/subtle"
	"errors"
	"io"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	grpcpeer "google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	replpb "github.com/replog/replog/proto"
)

// server handles inbound streams.
type server struct {
	replpb.UnimplementedReplicationServer
	t *Transport
}

// Stream reads the Hello, checks the token, accepts the stream by sending a
// header and then hands every batch to the Handler until the stream ends.
func (s *server) Stream(st grpc.ClientStreamingServer[replpb.Envelope, replpb.StreamAck]) error {
	t := s.t
	env := new(replpb.Envelope)
	if err := st.RecvMsg(env); err != nil {
		return err
	}
	h := env.GetHello()
	if h == nil || h.GetId() == "" {
		return status.Error(codes.InvalidArgument, "transport: first envelope must carry a hello with an id")
	}
	if t.cfg.Token != "" && subtle.ConstantTimeCompare([]byte(h.GetClusterToken()), []byte(t.cfg.Token)) != 1 {
		if t.noteRejected(h.GetId(), true) {
			t.log.Warn().Str("peer", h.GetId()).Msg("rejecting streams with a wrong cluster token")
		}
		return status.Error(codes.Unauthenticated, "transport: cluster token mismatch")
	}
	from := Peer{ID: h.GetId(), GRPC: h.GetGrpc(), HTTP: h.GetHttp()}
	if pr, ok := grpcpeer.FromContext(st.Context()); ok {
		from.GRPC = fillHost(from.GRPC, pr.Addr)
	}
	t.noteRejected(from.ID, false)
	t.learn(from)
	if err := st.SendHeader(metadata.Pairs(mdAccepted, "1", mdHTTP, t.cfg.AdvertiseHTTP)); err != nil {
		return err
	}
	t.log.Debug().Str("peer", from.ID).Str("grpc", from.GRPC).Msg("inbound stream accepted")
	for {
		if len(env.Msgs) > 0 {
			msgs := fromPB(env.Msgs)
			t.countReceived(from.ID, len(msgs))
			t.handler(from, msgs)
		}
		env = new(replpb.Envelope)
		if err := st.RecvMsg(env); err != nil {
			if errors.Is(err, io.EOF) {
				return st.SendAndClose(&replpb.StreamAck{})
			}
			return err
		}
	}
}

// maxRejected bounds the set of ids remembered for rejection logging.
const maxRejected = 1024

// noteRejected records whether id's latest stream was rejected and reports
// whether that is a change worth logging, so a peer retrying with a wrong
// token is logged once, not per retry.
func (t *Transport) noteRejected(id string, rejected bool) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !rejected {
		delete(t.rejected, id)
		return false
	}
	if _, seen := t.rejected[id]; seen {
		return false
	}
	if len(t.rejected) < maxRejected {
		t.rejected[id] = struct{}{}
	}
	return true
}

// fillHost replaces a missing or unspecified host ("":9090, "[::]:9090") in an
// advertised address with the IP the stream came from.
func fillHost(adv string, remote net.Addr) string {
	host, port, err := net.SplitHostPort(adv)
	if err != nil {
		return adv
	}
	if host != "" {
		if ip := net.ParseIP(host); ip == nil || !ip.IsUnspecified() {
			return adv
		}
	}
	ta, ok := remote.(*net.TCPAddr)
	if !ok {
		return adv
	}
	return net.JoinHostPort(ta.IP.String(), port)
}
