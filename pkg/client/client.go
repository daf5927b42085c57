// Package client is the Go client of replog's HTTP API, used by the tests,
// the benchmark and the CLI.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/replog/replog/pkg/api"
)

// shortCallTimeout bounds Status and Health when ctx has no deadline.
const shortCallTimeout = 10 * time.Second

// Client talks to one or more replog nodes. It is safe for concurrent use.
// A request goes to the first node; when that node cannot be reached at all
// (nothing was sent) the next one is tried.
type Client struct {
	urls []string
	hc   *http.Client
}

// New returns a client for the nodes at baseURLs ("http://host:port" or
// "host:port"). It shares one pooled transport with keep-alive and many idle
// connections per host, fit for load tests.
func New(baseURLs ...string) *Client {
	urls := make([]string, 0, len(baseURLs))
	for _, u := range baseURLs {
		u = strings.TrimRight(strings.TrimSpace(u), "/")
		if u == "" {
			continue
		}
		if !strings.Contains(u, "://") {
			u = "http://" + u
		}
		urls = append(urls, u)
	}
	return &Client{urls: urls, hc: NewHTTPClient()}
}

// NewHTTPClient is the http.Client New uses: dial and TLS timeouts, but no
// overall timeout, since an insert may wait for its write concern as long
// as the caller's context allows.
func NewHTTPClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy: http.ProxyFromEnvironment,
			DialContext: (&net.Dialer{
				Timeout:   5 * time.Second,
				KeepAlive: 30 * time.Second,
			}).DialContext,
			MaxIdleConns:          4096,
			MaxIdleConnsPerHost:   1024,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ExpectContinueTimeout: time.Second,
		},
	}
}

// WithHTTPClient returns a copy of c that sends through hc.
func (c *Client) WithHTTPClient(hc *http.Client) *Client {
	cp := *c
	cp.hc = hc
	return &cp
}

// On returns a copy of c that talks only to the node at baseURL, sharing
// c's connections.
func (c *Client) On(baseURL string) *Client {
	cp := *c
	cp.urls = New(baseURL).urls
	return &cp
}

// WithNode returns a copy of c that talks only to its i-th node (from 0).
func (c *Client) WithNode(i int) *Client {
	if i < 0 || i >= len(c.urls) {
		panic(fmt.Sprintf("client: node %d out of range; the client has %d", i, len(c.urls)))
	}
	cp := *c
	cp.urls = []string{c.urls[i]}
	return &cp
}

// URLs are the nodes' base URLs, in order.
func (c *Client) URLs() []string { return append([]string(nil), c.urls...) }

// InsertOptions describe one insert.
type InsertOptions struct {
	Message string
	// WriteConcern is an int (1..N), "majority" or "all"; nil omits it
	// (the server then uses "majority"). Other values are sent as given,
	// which lets tests provoke a 400.
	WriteConcern any
	// Key makes retries idempotent: a retry with the same key returns the
	// first insert's id.
	Key string
	// Timeout, if positive, is sent as timeoutMs (rounded up to whole ms).
	Timeout time.Duration
}

type insertBody struct {
	Message      string `json:"message"`
	WriteConcern any    `json:"writeConcern,omitempty"`
	Key          string `json:"key,omitempty"`
	TimeoutMs    int64  `json:"timeoutMs,omitempty"`
}

// Insert appends a message. Errors are *Error (the server answered) or
// *TransportError (it did not); see IsUnknownOutcome and IsRefused.
func (c *Client) Insert(ctx context.Context, o InsertOptions) (api.InsertResult, error) {
	b := insertBody{Message: o.Message, WriteConcern: o.WriteConcern, Key: o.Key}
	if o.Timeout > 0 {
		b.TimeoutMs = int64((o.Timeout + time.Millisecond - 1) / time.Millisecond)
	}
	body, err := json.Marshal(b)
	if err != nil {
		return api.InsertResult{}, fmt.Errorf("client: cannot encode the insert: %w", err)
	}
	var res api.InsertResult
	resp, err := c.do(ctx, http.MethodPost, "/insert", nil, body)
	if err != nil {
		return res, err
	}
	defer drain(resp)
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		// The status said success but the body broke: the message is in.
		return res, &TransportError{Op: "insert", URL: resp.Request.URL.String(), Sent: true,
			Err: fmt.Errorf("reading the answer: %w", err)}
	}
	return res, nil
}

// GetAllOptions select messages. Zero values mean from 1, no limit and the
// node's local view.
type GetAllOptions struct {
	From        uint64
	Limit       uint64
	ReadConcern string
}

// GetAll returns the selected messages.
func (c *Client) GetAll(ctx context.Context, o GetAllOptions) ([]api.Message, error) {
	var out []api.Message
	err := c.Scan(ctx, o, func(m api.Message) error {
		out = append(out, m)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if out == nil {
		out = []api.Message{}
	}
	return out, nil
}

// Scan streams the selected messages to fn, in id order, without holding
// them all. A broken stream is an error.
func (c *Client) Scan(ctx context.Context, o GetAllOptions, fn func(api.Message) error) error {
	q := url.Values{}
	if o.From > 0 {
		q.Set("from", strconv.FormatUint(o.From, 10))
	}
	if o.Limit > 0 {
		q.Set("limit", strconv.FormatUint(o.Limit, 10))
	}
	if o.ReadConcern != "" {
		q.Set("readConcern", o.ReadConcern)
	}
	resp, err := c.do(ctx, http.MethodGet, "/get-all", q, nil)
	if err != nil {
		return err
	}
	defer drain(resp)
	broken := func(err error) error {
		return &TransportError{Op: "get-all", URL: resp.Request.URL.String(), Sent: true,
			Err: fmt.Errorf("the answer broke off: %w", err)}
	}
	dec := json.NewDecoder(resp.Body)
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		if err == nil {
			err = fmt.Errorf("expected a JSON array, got %v", tok)
		}
		return broken(err)
	}
	for dec.More() {
		var m api.Message
		if err := dec.Decode(&m); err != nil {
			return broken(err)
		}
		if err := fn(m); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil {
		return broken(err)
	}
	return nil
}

// Status returns GET /status.
func (c *Client) Status(ctx context.Context) (api.Status, error) {
	var st api.Status
	return st, c.getJSON(ctx, "/status", &st)
}

// Health returns GET /health.
func (c *Client) Health(ctx context.Context) (api.Health, error) {
	var h api.Health
	return h, c.getJSON(ctx, "/health", &h)
}

// Membership is the answer to a membership call: the members and the
// master after the change.
type Membership struct {
	Members []api.MemberStatus `json:"members"`
	Leader  *api.Peer          `json:"leader"`
}

// Join asks the cluster to add p as a learner (POST /cluster/join); it
// becomes a voter by itself once caught up. Any member forwards the call
// to the master.
func (c *Client) Join(ctx context.Context, p api.Peer) (Membership, error) {
	body, err := json.Marshal(p)
	if err != nil {
		return Membership{}, fmt.Errorf("client: cannot encode the join: %w", err)
	}
	return c.membershipCall(ctx, http.MethodPost, "/cluster/join", body)
}

// RemoveMember removes the member id (DELETE /cluster/members/{id}); a
// removed master hands over first.
func (c *Client) RemoveMember(ctx context.Context, id string) (Membership, error) {
	return c.membershipCall(ctx, http.MethodDelete, "/cluster/members/"+url.PathEscape(id), nil)
}

// ForceReconfigure makes the node the client talks to (its first URL) the
// master of a new cluster of keep (empty: that node alone), without asking
// anyone. Disaster recovery only: it can lose every write that only the
// dropped members held (docs/operations.md). The node refuses with 409
// majority_reachable while a master was seen lately.
func (c *Client) ForceReconfigure(ctx context.Context, keep []string) (Membership, error) {
	if len(c.urls) == 0 {
		return Membership{}, errors.New("client: no node URL given")
	}
	var body []byte
	if len(keep) > 0 {
		var err error
		if body, err = json.Marshal(map[string][]string{"members": keep}); err != nil {
			return Membership{}, err
		}
	}
	return c.WithNode(0).membershipCall(ctx, http.MethodPost, "/cluster/force-reconfigure", body)
}

func (c *Client) membershipCall(ctx context.Context, method, path string, body []byte) (Membership, error) {
	var m Membership
	resp, err := c.do(ctx, method, path, nil, body)
	if err != nil {
		return m, err
	}
	defer drain(resp)
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		return m, &TransportError{Op: strings.TrimPrefix(path, "/"), URL: resp.Request.URL.String(), Sent: true,
			Err: fmt.Errorf("reading the answer: %w", err)}
	}
	return m, nil
}

func (c *Client) getJSON(ctx context.Context, path string, v any) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, shortCallTimeout)
		defer cancel()
	}
	resp, err := c.do(ctx, http.MethodGet, path, nil, nil)
	if err != nil {
		return err
	}
	defer drain(resp)
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return &TransportError{Op: strings.TrimPrefix(path, "/"), URL: resp.Request.URL.String(), Sent: true,
			Err: fmt.Errorf("reading the answer: %w", err)}
	}
	return nil
}

// do sends a request to the first node that can be reached and returns a
// 2xx response; other answers become *Error.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, body []byte) (*http.Response, error) {
	if len(c.urls) == 0 {
		return nil, errors.New("client: no node URL given")
	}
	op := strings.TrimPrefix(path, "/")
	var lastErr error
	for _, base := range c.urls {
		u := base + path
		if len(q) > 0 {
			u += "?" + q.Encode()
		}
		var sent atomic.Bool
		tctx := httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
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
		req, err := http.NewRequestWithContext(tctx, method, u, rd)
		if err != nil {
			return nil, fmt.Errorf("client: bad node URL %q: %w", base, err)
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		req.Header.Set("Accept", "application/json")
		resp, err := c.hc.Do(req)
		if err != nil {
			lastErr = &TransportError{Op: op, URL: u, Sent: sent.Load(), Err: err}
			if sent.Load() || ctx.Err() != nil {
				return nil, lastErr
			}
			continue // nothing reached this node: try the next one
		}
		if resp.StatusCode >= 200 && resp.StatusCode < 300 {
			return resp, nil
		}
		defer drain(resp)
		return nil, decodeError(resp)
	}
	return nil, lastErr
}

func decodeError(resp *http.Response) error {
	e := &Error{Status: resp.StatusCode}
	if s := resp.Header.Get("Retry-After"); s != "" {
		if secs, err := strconv.Atoi(s); err == nil && secs >= 0 {
			e.RetryAfter = time.Duration(secs) * time.Second
		}
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var eb api.ErrorBody
	if json.Unmarshal(raw, &eb) == nil && eb.Code != "" {
		e.Code, e.Message, e.ID, e.Term = eb.Code, eb.Error, eb.ID, eb.Term
		if eb.Acks != nil {
			e.Acks = *eb.Acks
		}
		return e
	}
	e.Code = "http_" + strconv.Itoa(resp.StatusCode)
	e.Message = strings.TrimSpace(http.StatusText(resp.StatusCode) + ": " + string(bytes.TrimSpace(raw)))
	return e
}

// drain reads a little of what is left so the connection can be reused.
func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
}
