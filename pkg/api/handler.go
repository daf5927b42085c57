package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
)

// DefaultMaxBodyBytes is the default limit on a POST /insert body (1 MiB).
const DefaultMaxBodyBytes = 1 << 20

// ForwardedHeader marks a request that a node forwarded to the master; its
// value counts the hops. A forwarded request that meets a *NotLeaderError
// again (the master it was sent to has just handed over) is forwarded once
// more, up to MaxForwardHops, then answered 503: forwarding never loops.
const ForwardedHeader = "X-Replog-Forwarded"

// MaxForwardHops bounds how often one insert is forwarded.
const MaxForwardHops = 2

// IdempotencyKeyHeader may carry the insert key instead of the body's "key".
const IdempotencyKeyHeader = "Idempotency-Key"

// Options configure NewHandler. The zero value is usable.
type Options struct {
	// MaxBodyBytes limits a POST /insert body; 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// DefaultTimeout is passed to Node.Insert when the client sends no
	// timeoutMs. 0 passes 0, which means the node's default (the original
	// service waits for the write concern without a limit).
	DefaultTimeout time.Duration
	// Logger receives request errors and recovered panics. The zero value
	// logs nothing.
	Logger zerolog.Logger
	// Registry receives the HTTP metrics and is served on GET /metrics. Nil
	// means a fresh registry (see NewRegistry); pass your own to add the
	// node's metrics to the same page.
	Registry *prometheus.Registry
	// ForwardClient sends inserts (and reads) that reached a sentinel on to
	// the master. Nil means a client with a short dial timeout and no
	// overall timeout: the master itself bounds the wait.
	ForwardClient *http.Client
	// ForwardRetry is how long the node that first received an insert keeps
	// trying to hand it to a master when the forward could not be delivered
	// or the master answered 503 (both mean nothing was appended), e.g.
	// while leadership moves. 0: one attempt.
	ForwardRetry time.Duration
}

// NewRegistry returns a registry holding the Go runtime and process
// collectors, ready for the HTTP metrics and the node's own.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGoCollector())
	reg.MustRegister(prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return reg
}

// DefaultForwardClient is the client used when Options.ForwardClient is nil.
func DefaultForwardClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy: nil,
			DialContext: (&net.Dialer{
				Timeout:   2 * time.Second,
				KeepAlive: 30 * time.Second,
			}).DialContext,
			MaxIdleConns:        1024,
			MaxIdleConnsPerHost: 256,
			IdleConnTimeout:     90 * time.Second,
		},
		// Never follow redirects: the master's answer is relayed verbatim.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// handler holds what every route needs.
type handler struct {
	node    Node
	opts    Options
	log     zerolog.Logger
	metrics *httpMetrics
	fwd     *http.Client
}

// route is one entry of the routing table; the table also answers the Allow
// header of a 405.
type route struct {
	method  string
	pattern string
	fn      http.HandlerFunc
}

// NewHandler returns the HTTP API of a node: POST /insert, GET /get-all,
// GET /status, GET /health and GET /metrics. Every error is answered as
// JSON {"error": "...", "code": "..."}.
func NewHandler(n Node, opts Options) http.Handler {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.Registry == nil {
		opts.Registry = NewRegistry()
	}
	h := &handler{
		node:    n,
		opts:    opts,
		log:     opts.Logger,
		metrics: newHTTPMetrics(opts.Registry),
		fwd:     opts.ForwardClient,
	}
	if h.fwd == nil {
		h.fwd = DefaultForwardClient()
	}

	routes := []route{
		{http.MethodPost, "/insert", h.insert},
		{http.MethodGet, "/get-all", h.getAll},
		{http.MethodGet, "/status", h.status},
		{http.MethodGet, "/health", h.health},
		{http.MethodGet, "/metrics", promhttp.HandlerFor(opts.Registry, promhttp.HandlerOpts{
			ErrorLog: promLogger{h.log}, ErrorHandling: promhttp.ContinueOnError,
		}).ServeHTTP},
	}
	routes = append(routes, h.clusterRoutes()...)
	allowed := map[string][]string{}
	for _, rt := range routes {
		allowed[rt.pattern] = append(allowed[rt.pattern], rt.method)
	}

	r := chi.NewRouter()
	r.Use(h.instrument, h.recoverer)
	for _, rt := range routes {
		r.Method(rt.method, rt.pattern, rt.fn)
	}
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found",
			fmt.Sprintf("no such path %q; the API serves %s", r.URL.Path, pathList(routes)))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		methods := allowed[r.URL.Path]
		if len(methods) == 0 {
			writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no such path %q", r.URL.Path))
			return
		}
		w.Header().Set("Allow", strings.Join(methods, ", "))
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed",
			fmt.Sprintf("method %s is not allowed on %s; use %s", r.Method, r.URL.Path, strings.Join(methods, " or ")))
	})
	return r
}

func pathList(routes []route) string {
	var parts []string
	for _, rt := range routes {
		parts = append(parts, rt.method+" "+rt.pattern)
	}
	return strings.Join(parts, ", ")
}

// recoverer turns a panic in a handler into a logged 500 JSON error. The
// http.ErrAbortHandler panic (a deliberately broken stream) passes through.
func (h *handler) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			h.log.Error().Str("method", r.Method).Str("path", r.URL.Path).
				Interface("panic", v).Bytes("stack", debug.Stack()).Msg("api: handler panicked")
			if sw, ok := w.(*statusWriter); ok && sw.wroteHeader {
				// Part of an answer is out: break the connection rather
				// than let the client take it as complete.
				panic(http.ErrAbortHandler)
			}
			writeError(w, http.StatusInternalServerError, "internal",
				"the server failed while handling this request; the outcome is unknown")
		}()
		next.ServeHTTP(w, r)
	})
}

// ErrorBody is the JSON body of every error answer.
type ErrorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"`
	// ID, Term and Acks are set on a 504 whose message is in the log.
	ID   uint64 `json:"id,omitempty"`
	Term uint64 `json:"term,omitempty"`
	Acks *int   `json:"acks,omitempty"`
}

// writeJSON answers status with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = json.Marshal(ErrorBody{Error: "api: cannot encode the answer: " + err.Error(), Code: "internal"})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	b = append(b, '\n')
	_, _ = w.Write(b)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, ErrorBody{Error: msg, Code: code})
}

// writeNodeError answers an error from Node.Insert or Node.Read that is not
// a context error or a *NotLeaderError (the callers handle those).
func (h *handler) writeNodeError(w http.ResponseWriter, r *http.Request, err error) {
	var (
		unknown *OutcomeUnknownError
		bad     *BadRequestError
		notLdr  *NotLeaderError
	)
	switch {
	case errors.Is(err, ErrNoLeader):
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "no_master",
			"there is no master right now (an election may be under way); nothing was appended, retry shortly")
	case errors.Is(err, ErrNoQuorum):
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "no_quorum",
			"the master cannot reach a majority and is read-only; nothing was appended, retry shortly")
	case errors.As(err, &notLdr):
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "no_master",
			"this node is not the master and cannot reach one; nothing was appended, retry shortly")
	case errors.As(err, &unknown):
		code := unknown.Code
		if code == "" {
			code = "timeout"
		}
		acks := unknown.Acks
		writeJSON(w, http.StatusGatewayTimeout, ErrorBody{
			Error: unknown.Error(), Code: code, ID: unknown.ID, Term: unknown.Term, Acks: &acks,
		})
	case errors.As(err, &bad):
		field := bad.Field
		if field == "" {
			field = "request"
		}
		writeError(w, http.StatusBadRequest, badCode(field), bad.Msg)
	default:
		h.log.Error().Err(err).Str("method", r.Method).Str("path", r.URL.Path).Msg("api: unexpected node error")
		writeError(w, http.StatusInternalServerError, "internal",
			"the node failed unexpectedly: "+err.Error())
	}
}

// badCode is the error code for an invalid field: "bad_" and the field in
// snake case, with the insert fields spelled as the API documents them.
func badCode(field string) string {
	switch field {
	case "timeoutMs", "timeout":
		return "bad_timeout"
	}
	var b strings.Builder
	b.WriteString("bad_")
	for i, c := range field {
		if c >= 'A' && c <= 'Z' {
			if i > 0 {
				b.WriteByte('_')
			}
			c += 'a' - 'A'
		}
		b.WriteRune(c)
	}
	return b.String()
}

// promLogger adapts zerolog to promhttp's error log.
type promLogger struct{ log zerolog.Logger }

func (p promLogger) Println(v ...any) { p.log.Error().Msg(fmt.Sprint(v...)) }
