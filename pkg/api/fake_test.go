package api

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeNode is a Node that holds its log in a slice.
type fakeNode struct {
	mu      sync.Mutex
	voters  int
	log     []Message
	keys    map[string]uint64
	inserts []InsertRequest // every request that reached Insert

	insertErr error // returned by Insert instead of appending
	// insertHook, if set, runs inside Insert before anything else.
	insertHook func(ctx context.Context, req InsertRequest) error

	readErr      error // returned by Read after readErrAfter messages
	readErrAfter int
	readGate     chan struct{} // if set, Read waits on it after gateAfter messages
	gateAfter    int

	status Status
}

func newFakeNode(voters int) *fakeNode {
	return &fakeNode{voters: voters, keys: map[string]uint64{}, status: Status{
		ID: "n1", Role: "master", Term: 1,
		Members: []MemberStatus{{ID: "n1", HTTP: "n1:8080", GRPC: "n1:9090", Voter: true, Self: true, Health: Healthy}},
	}}
}

func (f *fakeNode) fill(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	base := time.Date(2024, 1, 2, 3, 4, 5, 6, time.UTC)
	for i := 0; i < n; i++ {
		id := uint64(len(f.log) + 1)
		f.log = append(f.log, Message{ID: id, Message: fmt.Sprintf("m%d", id), Timestamp: base.Add(time.Duration(id) * time.Millisecond)})
	}
}

func (f *fakeNode) Insert(ctx context.Context, req InsertRequest) (InsertResult, error) {
	f.mu.Lock()
	f.inserts = append(f.inserts, req)
	hook, ierr := f.insertHook, f.insertErr
	f.mu.Unlock()
	if hook != nil {
		if err := hook(ctx, req); err != nil {
			return InsertResult{}, err
		}
	}
	if ierr != nil {
		return InsertResult{}, ierr
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if req.Key != "" {
		if id, ok := f.keys[req.Key]; ok {
			return InsertResult{ID: id, Term: 1, Acks: 1, Duplicate: true}, nil
		}
	}
	id := uint64(len(f.log) + 1)
	f.log = append(f.log, Message{ID: id, Message: req.Message, Timestamp: time.Now().UTC()})
	if req.Key != "" {
		f.keys[req.Key] = id
	}
	return InsertResult{ID: id, Term: 1, Acks: 1}, nil
}

func (f *fakeNode) Read(ctx context.Context, req ReadRequest, fn func(Message) error) error {
	f.mu.Lock()
	log := f.log
	rerr, after, gate, gateAfter := f.readErr, f.readErrAfter, f.readGate, f.gateAfter
	f.mu.Unlock()
	sent := 0
	for _, m := range log {
		if m.ID < req.From {
			continue
		}
		if req.Limit > 0 && uint64(sent) >= req.Limit {
			break
		}
		if rerr != nil && sent == after {
			return rerr
		}
		if gate != nil && sent == gateAfter {
			select {
			case <-gate:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if err := fn(m); err != nil {
			return err
		}
		sent++
	}
	if rerr != nil && sent == after {
		return rerr
	}
	return nil
}

func (f *fakeNode) Status() Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status
}

func (f *fakeNode) Voters() int { return f.voters }

func (f *fakeNode) logLen() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.log)
}

func (f *fakeNode) setInsertErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.insertErr = err
}

func (f *fakeNode) insertCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.inserts)
}

func (f *fakeNode) lastInsert(t *testing.T) InsertRequest {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.inserts) == 0 {
		t.Fatal("no insert reached the node")
	}
	return f.inserts[len(f.inserts)-1]
}

// serve starts an API server over n.
func serve(t *testing.T, n Node, opts Options) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(NewHandler(n, opts))
	t.Cleanup(srv.Close)
	return srv
}

// do sends one request and returns the answer with its body read.
func do(t *testing.T, method, url, body string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the answer: %v", method, url, err)
	}
	return resp, b
}
