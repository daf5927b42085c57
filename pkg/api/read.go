package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
)

// flushEvery is how many /get-all entries go out between flushes.
const flushEvery = 64

// Health is GET /health.
type Health struct {
	Status  string         `json:"status"`
	ID      string         `json:"id"`
	Role    string         `json:"role"`
	Term    uint64         `json:"term"`
	Leader  *Peer          `json:"leader"`
	Members []MemberStatus `json:"members"`
}

// parseReadRequest validates the /get-all query.
func parseReadRequest(r *http.Request) (ReadRequest, *requestError) {
	q := r.URL.Query()
	req := ReadRequest{From: 1, Concern: ReadLocal}
	if v, ok := q["from"]; ok {
		n, err := strconv.ParseUint(v[0], 10, 64)
		if err != nil || n < 1 || len(v) > 1 {
			return req, badRequest("bad_from", "from must be given once, as an integer id of at least 1; got %q", v[0])
		}
		req.From = n
	}
	if v, ok := q["limit"]; ok {
		n, err := strconv.ParseUint(v[0], 10, 64)
		if err != nil || len(v) > 1 {
			return req, badRequest("bad_limit", "limit must be given once, as an integer of at least 0 (0 means all); got %q", v[0])
		}
		req.Limit = n
	}
	if v, ok := q["readConcern"]; ok {
		switch {
		case len(v) == 1 && (v[0] == ReadLocal || v[0] == ReadMajority || v[0] == ReadLinearizable):
			req.Concern = v[0]
		default:
			return req, badRequest("bad_read_concern", "readConcern must be %q, %q or %q; got %q",
				ReadLocal, ReadMajority, ReadLinearizable, v[0])
		}
	}
	return req, nil
}

// getAll serves GET /get-all as a streamed JSON array. Nothing reaches the
// client until the first batch is flushed, so an error that comes before it
// is answered as a JSON error. An error after that aborts the connection:
// the client sees a broken answer, never a shorter array that parses.
func (h *handler) getAll(w http.ResponseWriter, r *http.Request) {
	req, rerr := parseReadRequest(r)
	if rerr != nil {
		writeError(w, rerr.status, rerr.code, rerr.msg)
		return
	}
	lw := &lazyWriter{w: w}
	bw := bufio.NewWriterSize(lw, 64<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	rc := http.NewResponseController(w)
	count := 0
	_ = bw.WriteByte('[')
	err := h.node.Read(r.Context(), req, func(m Message) error {
		if count > 0 {
			if err := bw.WriteByte(','); err != nil {
				return err
			}
		}
		// Encode ends each element with a newline, which JSON allows.
		if err := enc.Encode(m); err != nil {
			return err
		}
		count++
		if count%flushEvery == 0 {
			if err := bw.Flush(); err != nil {
				return err
			}
			if err := rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
				return err
			}
		}
		return nil
	})
	if err != nil {
		if lw.started {
			if r.Context().Err() == nil {
				h.log.Warn().Err(err).Int("sent", count).Msg("api: get-all failed mid-stream; aborting the answer")
			}
			panic(http.ErrAbortHandler)
		}
		// Nothing went out: drop the buffered part and answer the error.
		var notLdr *NotLeaderError
		switch {
		case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
			if r.Context().Err() != nil {
				h.log.Debug().Err(err).Msg("api: client went away during get-all")
				return
			}
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusServiceUnavailable, "timeout",
				"the node could not serve readConcern "+req.Concern+" in time: "+err.Error())
		case errors.As(err, &notLdr) && notLdr.LeaderHTTP != "" && r.Header.Get(ForwardedHeader) == "":
			h.forward(w, r, notLdr, "/get-all", nil, 1, false)
		default:
			h.writeNodeError(w, r, err)
		}
		return
	}
	if err := bw.WriteByte(']'); err != nil {
		panic(http.ErrAbortHandler)
	}
	if err := bw.Flush(); err != nil {
		panic(http.ErrAbortHandler)
	}
}

// lazyWriter sends the 200 and its headers with the first bytes of the
// body, so that an answer can still become an error until then.
type lazyWriter struct {
	w       http.ResponseWriter
	started bool
}

func (l *lazyWriter) Write(p []byte) (int, error) {
	if !l.started {
		l.started = true
		l.w.Header().Set("Content-Type", "application/json")
		l.w.Header().Set("X-Content-Type-Options", "nosniff")
		l.w.WriteHeader(http.StatusOK)
	}
	return l.w.Write(p)
}

// status serves GET /status.
func (h *handler) status(w http.ResponseWriter, r *http.Request) {
	st := h.node.Status()
	if st.Members == nil {
		st.Members = []MemberStatus{}
	}
	writeJSON(w, http.StatusOK, st)
}

// health serves GET /health: 200 while the node serves.
func (h *handler) health(w http.ResponseWriter, r *http.Request) {
	st := h.node.Status()
	if st.Members == nil {
		st.Members = []MemberStatus{}
	}
	writeJSON(w, http.StatusOK, Health{
		Status:  "ok",
		ID:      st.ID,
		Role:    st.Role,
		Term:    st.Term,
		Leader:  st.Leader,
		Members: st.Members,
	})
}
