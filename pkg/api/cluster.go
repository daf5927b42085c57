package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"
)

// Membership is what the /cluster calls need from a node. It is optional:
// a Node that does not implement it serves no /cluster routes.
type Membership interface {
	// Join adds a member as a learner (it becomes a voter by itself once
	// caught up) and returns once that is committed. Joining again with the
	// same addresses succeeds. On a non-master it returns *NotLeaderError.
	Join(ctx context.Context, p Peer) error
	// RemoveMember removes a member and returns once that is committed.
	RemoveMember(ctx context.Context, id string) error
	// ForceReconfigure makes this node master of a smaller membership
	// (keep; empty means this node alone). Disaster recovery only.
	ForceReconfigure(ctx context.Context, keep []string) error
}

// ConflictError is a membership change refused in the cluster's present
// state (another change in progress, no live majority afterwards, a
// majority still reachable for force-reconfigure). HTTP 409.
type ConflictError struct {
	Code string
	Msg  string
}

func (e *ConflictError) Error() string { return e.Msg }

func (h *handler) membership() Membership {
	m, _ := h.node.(Membership)
	return m
}

func (h *handler) clusterRoutes() []route {
	if h.membership() == nil {
		return nil
	}
	return []route{
		{http.MethodPost, "/cluster/join", h.join},
		{http.MethodDelete, "/cluster/members/{id}", h.removeMember},
		{http.MethodPost, "/cluster/force-reconfigure", h.forceReconfigure},
	}
}

func (h *handler) readSmallBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_body", "the body could not be read: "+err.Error())
		return nil, false
	}
	return body, true
}

func (h *handler) join(w http.ResponseWriter, r *http.Request) {
	body, ok := h.readSmallBody(w, r)
	if !ok {
		return
	}
	var p Peer
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		writeError(w, http.StatusBadRequest, "bad_json", "the body must be a JSON object {\"id\", \"http\", \"grpc\"}: "+err.Error())
		return
	}
	for _, f := range []struct{ name, v string }{{"id", p.ID}, {"http", p.HTTP}, {"grpc", p.GRPC}} {
		if f.v == "" {
			writeError(w, http.StatusBadRequest, "bad_"+f.name, fmt.Sprintf("%q is required: the new member's %s", f.name, map[string]string{
				"id": "id", "http": "HTTP address host:port", "grpc": "gRPC address host:port"}[f.name]))
			return
		}
	}
	err := h.membership().Join(r.Context(), p)
	h.answerChange(w, r, err, "/cluster/join", body)
}

func (h *handler) removeMember(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	err := h.membership().RemoveMember(r.Context(), id)
	h.answerChange(w, r, err, r.URL.Path, nil)
}

func (h *handler) forceReconfigure(w http.ResponseWriter, r *http.Request) {
	body, ok := h.readSmallBody(w, r)
	if !ok {
		return
	}
	var req struct {
		Members []string `json:"members"`
	}
	if len(body) > 0 {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeError(w, http.StatusBadRequest, "bad_json", "the body must be empty or {\"members\": [\"id\", ...]}: "+err.Error())
			return
		}
	}
	err := h.membership().ForceReconfigure(r.Context(), req.Members)
	h.answerChange(w, r, err, "", nil)
}

// answerChange answers a membership call: the new membership on success,
// a forward to the master, or the error.
func (h *handler) answerChange(w http.ResponseWriter, r *http.Request, err error, forwardPath string, body []byte) {
	var notLdr *NotLeaderError
	var conflict *ConflictError
	hops, _ := strconv.Atoi(r.Header.Get(ForwardedHeader))
	switch {
	case err == nil:
		st := h.node.Status()
		writeJSON(w, http.StatusOK, map[string]any{"members": st.Members, "leader": st.Leader})
	case errors.As(err, &notLdr) && notLdr.LeaderHTTP != "" && forwardPath != "" && hops < MaxForwardHops:
		h.forward(w, r, notLdr, forwardPath, body, hops+1, false)
	case errors.As(err, &conflict):
		writeError(w, http.StatusConflict, conflict.Code, conflict.Msg)
	case errors.Is(err, context.Canceled):
	default:
		h.writeNodeError(w, r, err)
	}
}
