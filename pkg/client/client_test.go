package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/replog/replog/pkg/api"
)

// memNode is a minimal api.Node over a slice.
type memNode struct {
	mu      sync.Mutex
	log     []api.Message
	last    api.InsertRequest
	err     error
	readErr error
}

func (m *memNode) Insert(_ context.Context, req api.InsertRequest) (api.InsertResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.last = req
	if m.err != nil {
		return api.InsertResult{}, m.err
	}
	id := uint64(len(m.log) + 1)
	m.log = append(m.log, api.Message{ID: id, Message: req.Message, Timestamp: time.Now().UTC()})
	return api.InsertResult{ID: id, Term: 1, Acks: 2}, nil
}

func (m *memNode) Read(_ context.Context, req api.ReadRequest, fn func(api.Message) error) error {
	m.mu.Lock()
	log, rerr := m.log, m.readErr
	m.mu.Unlock()
	n := uint64(0)
	for _, msg := range log {
		if msg.ID < req.From || (req.Limit > 0 && n >= req.Limit) {
			continue
		}
		if rerr != nil && n == 100 {
			return rerr
		}
		if err := fn(msg); err != nil {
			return err
		}
		n++
	}
	return nil
}

func (m *memNode) Status() api.Status {
	return api.Status{ID: "n1", Role: "master", Term: 1, Members: []api.MemberStatus{{ID: "n1", Voter: true, Health: api.Healthy}}}
}

func (m *memNode) Voters() int { return 3 }

func (m *memNode) lastReq() api.InsertRequest {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.last
}

func (m *memNode) set(err, readErr error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.err, m.readErr = err, readErr
}

func start(t *testing.T) (*memNode, string) {
	t.Helper()
	n := &memNode{}
	srv := httptest.NewServer(api.NewHandler(n, api.Options{}))
	t.Cleanup(srv.Close)
	return n, srv.URL
}

func deadAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestInsert(t *testing.T) {
	n, url := start(t)
	c := New(url)
	ctx := context.Background()
	tests := []struct {
		o        InsertOptions
		wc       int
		word     string
		echo     any
		key      string
		timeout  time.Duration
		expectID uint64
	}{
		{InsertOptions{Message: "a"}, 0, "majority", "majority", "", 0, 1},
		{InsertOptions{Message: "b", WriteConcern: 2}, 2, "", 2.0, "", 0, 2},
		{InsertOptions{Message: "c", WriteConcern: "all", Key: "k"}, 0, "all", "all", "k", 0, 3},
		{InsertOptions{Message: "d", Timeout: 1500 * time.Microsecond}, 0, "majority", "majority", "", 2 * time.Millisecond, 4},
	}
	for i, tt := range tests {
		res, err := c.Insert(ctx, tt.o)
		if err != nil {
			t.Fatalf("#%d: %v", i, err)
		}
		if res.ID != tt.expectID || res.WriteConcern != tt.echo {
			t.Errorf("#%d: got %+v, want id %d writeConcern %v", i, res, tt.expectID, tt.echo)
		}
		req := n.lastReq()
		if req.WriteConcern != tt.wc || req.Word != tt.word || req.Key != tt.key || req.Timeout != tt.timeout {
			t.Errorf("#%d: node got %+v", i, req)
		}
	}
}

func TestErrors(t *testing.T) {
	n, url := start(t)
	c := New(url)
	ctx := context.Background()
	tests := []struct {
		o       InsertOptions
		nodeErr error
		status  int
		code    string
		unknown bool
		refused bool
		id      uint64
		retry   time.Duration
	}{
		{InsertOptions{Message: "a", WriteConcern: 9}, nil, 400, "bad_write_concern", false, true, 0, 0},
		{InsertOptions{Message: ""}, nil, 400, "bad_message", false, true, 0, 0},
		{InsertOptions{Message: "a"}, api.ErrNoLeader, 503, "no_master", false, true, 0, time.Second},
		{InsertOptions{Message: "a"}, api.ErrNoQuorum, 503, "no_quorum", false, true, 0, time.Second},
		{InsertOptions{Message: "a"}, &api.OutcomeUnknownError{ID: 7, Term: 2, Acks: 1, Code: "timeout"}, 504, "timeout", true, false, 7, 0},
	}
	for i, tt := range tests {
		n.set(tt.nodeErr, nil)
		_, err := c.Insert(ctx, tt.o)
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("#%d: error %v (%T) is not *Error", i, err, err)
		}
		if e.Status != tt.status || e.Code != tt.code || e.ID != tt.id || e.RetryAfter != tt.retry || e.Message == "" {
			t.Errorf("#%d: got %+v", i, e)
		}
		if IsUnknownOutcome(err) != tt.unknown || IsRefused(err) != tt.refused {
			t.Errorf("#%d: unknown=%v refused=%v, want %v %v", i, IsUnknownOutcome(err), IsRefused(err), tt.unknown, tt.refused)
		}
		if Code(err) != tt.code {
			t.Errorf("#%d: Code = %q", i, Code(err))
		}
	}
}

func TestTransportErrors(t *testing.T) {
	ctx := context.Background()
	_, err := New(deadAddr(t)).Insert(ctx, InsertOptions{Message: "a"})
	var te *TransportError
	if !errors.As(err, &te) || te.Sent || !IsRefused(err) || IsUnknownOutcome(err) {
		t.Errorf("dial failure: %v, want a refused transport error", err)
	}

	hangup := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			conn.Close()
		}
	}))
	defer hangup.Close()
	_, err = New(hangup.URL).Insert(ctx, InsertOptions{Message: "a"})
	if !IsUnknownOutcome(err) || IsRefused(err) {
		t.Errorf("hang-up after the request: %v, want an unknown outcome", err)
	}

	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "upstream gone", http.StatusBadGateway)
	}))
	defer proxy.Close()
	_, err = New(proxy.URL).Insert(ctx, InsertOptions{Message: "a"})
	var e *Error
	if !errors.As(err, &e) || e.Status != 502 || e.Code != "http_502" || !strings.Contains(e.Message, "upstream gone") || !IsUnknownOutcome(err) {
		t.Errorf("non-JSON 502: %v", err)
	}

	// The caller's deadline while waiting for the answer: unknown outcome.
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		<-r.Context().Done()
	}))
	defer slow.Close()
	tctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	_, err = New(slow.URL).Insert(tctx, InsertOptions{Message: "a"})
	if !IsUnknownOutcome(err) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("deadline while waiting: %v", err)
	}
}

func TestFailoverAndTargeting(t *testing.T) {
	n1, url1 := start(t)
	n2, url2 := start(t)
	c := New(deadAddr(t), strings.TrimPrefix(url1, "http://"), url2+"/")
	if _, err := c.Insert(context.Background(), InsertOptions{Message: "x"}); err != nil {
		t.Fatalf("failover past a dead node: %v", err)
	}
	if _, err := c.On(url2).Insert(context.Background(), InsertOptions{Message: "y"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WithNode(1).Insert(context.Background(), InsertOptions{Message: "z"}); err != nil {
		t.Fatal(err)
	}
	if n1.lastReq().Message != "z" || n2.lastReq().Message != "y" {
		t.Errorf("node 1 got %q, node 2 got %q", n1.lastReq().Message, n2.lastReq().Message)
	}
	if got := len(c.URLs()); got != 3 {
		t.Errorf("%d URLs", got)
	}
}

func TestGetAll(t *testing.T) {
	n, url := start(t)
	c := New(url)
	ctx := context.Background()
	msgs, err := c.GetAll(ctx, GetAllOptions{})
	if err != nil || msgs == nil || len(msgs) != 0 {
		t.Fatalf("empty log: %v %v", msgs, err)
	}
	for i := 1; i <= 20; i++ {
		if _, err := c.Insert(ctx, InsertOptions{Message: fmt.Sprint("m", i)}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		o          GetAllOptions
		first, cnt int
	}{
		{GetAllOptions{}, 1, 20},
		{GetAllOptions{From: 5}, 5, 16},
		{GetAllOptions{From: 5, Limit: 2, ReadConcern: api.ReadMajority}, 5, 2},
		{GetAllOptions{Limit: 3, ReadConcern: api.ReadLinearizable}, 1, 3},
		{GetAllOptions{From: 21}, 0, 0},
	}
	for i, tt := range tests {
		msgs, err := c.GetAll(ctx, tt.o)
		if err != nil || len(msgs) != tt.cnt {
			t.Errorf("#%d: %d messages, %v; want %d", i, len(msgs), err, tt.cnt)
			continue
		}
		for j, m := range msgs {
			if m.ID != uint64(tt.first+j) || m.Message != fmt.Sprint("m", tt.first+j) {
				t.Errorf("#%d: element %d = %+v", i, j, m)
			}
		}
	}
	_, err = c.GetAll(ctx, GetAllOptions{ReadConcern: "strong"})
	if Code(err) != "bad_read_concern" || !IsRefused(err) {
		t.Errorf("bad readConcern: %v", err)
	}
	for i := 21; i <= 200; i++ {
		if _, err := c.Insert(ctx, InsertOptions{Message: fmt.Sprint("m", i)}); err != nil {
			t.Fatal(err)
		}
	}
	n.set(nil, errors.New("disk on fire"))
	seen := 0
	err = c.Scan(ctx, GetAllOptions{}, func(api.Message) error { seen++; return nil })
	var te *TransportError
	if !errors.As(err, &te) || seen >= 100 {
		t.Errorf("a broken stream: %v after %d messages, want a transport error before 100", err, seen)
	}
}

func TestStatusAndHealth(t *testing.T) {
	_, url := start(t)
	c := New(url)
	st, err := c.Status(context.Background())
	if err != nil || st.ID != "n1" || st.Role != "master" {
		t.Errorf("status %+v %v", st, err)
	}
	h, err := c.Health(context.Background())
	if err != nil || h.Status != "ok" || len(h.Members) != 1 || h.Members[0].Health != api.Healthy {
		t.Errorf("health %+v %v", h, err)
	}
}
