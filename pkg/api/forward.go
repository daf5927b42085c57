package api

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"strings"
	"sync/atomic"
)

// maxForwardAnswer bounds an insert answer read back from the master.
const maxForwardAnswer = 1 << 20

// relayedHeaders are the master's answer headers passed on to the client.
var relayedHeaders = []string{"Content-Type", "Retry-After", "X-Content-Type-Options"}

// leaderURL turns a master's advertised HTTP address into a base URL.
func leaderURL(addr string) string {
	addr = strings.TrimRight(addr, "/")
	if strings.Contains(addr, "://") {
		return addr
	}
	return "http://" + addr
}

// forward sends the request this node cannot serve to the master named in
// nl and relays its answer verbatim. body is the insert body already read
// (nil for a GET). The forwarded request carries ForwardedHeader, so a
// master that turns out not to be one answers 503 instead of forwarding
// again.
//
// Outcome rules: if the request never left this node (the dial failed),
// nothing was appended and the answer is 503 no_master. If it was written
// in full but no complete answer came back, the master may have appended
// it: the answer is 504 forward_failed.
//
// With mayRetry (an insert on the node that first received it), a forward
// that certainly appended nothing — the request never left, or the master
// answered 503 — writes no answer and returns true, so the caller can look
// for the master again.
//
// If another master has been known for a while (MasterWatch) and the old
// one still has not answered — it is cut off or frozen, and might not for
// as long as that lasts — the forward is abandoned: the outcome is then as
// unknown as for a lost answer (504), or nothing was sent and the caller
// may retry.
func (h *handler) forward(w http.ResponseWriter, r *http.Request, nl *NotLeaderError, path string, body []byte, hops int, mayRetry bool) (retry bool) {
	target := leaderURL(nl.LeaderHTTP) + path
	if r.URL.RawQuery != "" {
		target += "?" + r.URL.RawQuery
	}
	fctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	var replaced atomic.Bool
	if mw, ok := h.node.(MasterWatch); ok && nl.LeaderID != "" {
		mw.OnMasterReplaced(fctx, nl.LeaderID, func() {
			replaced.Store(true)
			cancel()
		})
	}
	var sent atomic.Bool
	ctx := httptrace.WithClientTrace(fctx, &httptrace.ClientTrace{
		WroteRequest: func(info httptrace.WroteRequestInfo) {
			if info.Err == nil {
				sent.Store(true)
			}
		},
	})
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, target, rd)
	if err != nil {
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "no_master",
			fmt.Sprintf("this node is not the master and the master's address %q is unusable: %v; nothing was appended", nl.LeaderHTTP, err))
		return
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if k := r.Header.Get(IdempotencyKeyHeader); k != "" {
		req.Header.Set(IdempotencyKeyHeader, k)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set(ForwardedHeader, strconv.Itoa(hops))
	log := h.log.With().Str("master", nl.LeaderID).Str("target", target).Logger()

	resp, err := h.fwd.Do(req)
	if err != nil {
		if r.Context().Err() != nil {
			log.Debug().Err(err).Msg("api: client went away while its request was forwarded")
			return
		}
		if mayRetry && !sent.Load() {
			log.Debug().Err(err).Msg("api: forward not delivered; looking for the master again")
			return true
		}
		if replaced.Load() {
			err = fmt.Errorf("no answer before another master took over: %w", err)
		}
		if !sent.Load() || r.Method == http.MethodGet {
			log.Warn().Err(err).Msg("api: cannot reach the master to forward a request")
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusServiceUnavailable, "no_master",
				fmt.Sprintf("this node is not the master and cannot reach the master %s at %s: %v; nothing was appended",
					nl.LeaderID, nl.LeaderHTTP, err))
			return
		}
		log.Warn().Err(err).Msg("api: forwarded insert got no answer")
		writeError(w, http.StatusGatewayTimeout, "forward_failed",
			fmt.Sprintf("the insert was sent to the master %s at %s but no answer came back (%v); the outcome is unknown",
				nl.LeaderID, nl.LeaderHTTP, err))
		return
	}
	defer resp.Body.Close()

	if mayRetry && resp.StatusCode == http.StatusServiceUnavailable {
		// 503 means nothing was appended there.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxForwardAnswer))
		log.Debug().Msg("api: master answered 503; looking for the master again")
		return true
	}
	if r.Method != http.MethodGet {
		answer, err := io.ReadAll(io.LimitReader(resp.Body, maxForwardAnswer))
		if err != nil {
			if r.Context().Err() != nil {
				return
			}
			if replaced.Load() {
				err = fmt.Errorf("no answer before another master took over: %w", err)
			}
			log.Warn().Err(err).Int("status", resp.StatusCode).Msg("api: forwarded insert's answer broke off")
			writeError(w, http.StatusGatewayTimeout, "forward_failed",
				fmt.Sprintf("the master %s at %s answered %d but the answer broke off (%v); the outcome is unknown",
					nl.LeaderID, nl.LeaderHTTP, resp.StatusCode, err))
			return
		}
		copyHeaders(w.Header(), resp.Header)
		w.WriteHeader(resp.StatusCode)
		_, _ = w.Write(answer)
		return
	}

	// A read streams through; a broken upstream breaks the client's answer.
	copyHeaders(w.Header(), resp.Header)
	w.WriteHeader(resp.StatusCode)
	rc := http.NewResponseController(w)
	buf := make([]byte, 32<<10)
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				panic(http.ErrAbortHandler)
			}
			_ = rc.Flush()
		}
		if rerr == io.EOF {
			return
		}
		if rerr != nil {
			log.Warn().Err(rerr).Msg("api: forwarded read broke off")
			panic(http.ErrAbortHandler)
		}
	}
}

func copyHeaders(dst, src http.Header) {
	for _, k := range relayedHeaders {
		if v := src.Get(k); v != "" {
			dst.Set(k, v)
		}
	}
}
