package api

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// headerRecorder wraps a handler and remembers the request headers it saw.
type headerRecorder struct {
	mu   sync.Mutex
	seen []http.Header
	next http.Handler
}

func (h *headerRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	h.seen = append(h.seen, r.Header.Clone())
	h.mu.Unlock()
	h.next.ServeHTTP(w, r)
}

func (h *headerRecorder) last(t *testing.T) http.Header {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.seen) == 0 {
		t.Fatal("the master saw no request")
	}
	return h.seen[len(h.seen)-1]
}

// cluster starts a master and a sentinel that knows it.
func cluster(t *testing.T) (master *fakeNode, rec *headerRecorder, sentinel *fakeNode, sentinelURL string) {
	t.Helper()
	master = newFakeNode(3)
	rec = &headerRecorder{next: NewHandler(master, Options{})}
	msrv := httptest.NewServer(rec)
	t.Cleanup(msrv.Close)
	sentinel = newFakeNode(3)
	sentinel.insertErr = &NotLeaderError{LeaderID: "m", LeaderHTTP: strings.TrimPrefix(msrv.URL, "http://")}
	sentinel.readErr = sentinel.insertErr
	ssrv := serve(t, sentinel, Options{})
	return master, rec, sentinel, ssrv.URL
}

func TestForwardInsertToMaster(t *testing.T) {
	master, rec, sentinel, url := cluster(t)
	body := `{"message": "via sentinel", "writeConcern": 2}`
	resp, got := do(t, "POST", url+"/insert", body, map[string]string{"Idempotency-Key": "key-1"})
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, got)
	}
	var res InsertResult
	if err := json.Unmarshal(got, &res); err != nil || res.ID != 1 || res.WriteConcern != 2.0 {
		t.Errorf("answer %s, want id 1 writeConcern 2", got)
	}
	if master.logLen() != 1 || sentinel.logLen() != 0 {
		t.Errorf("master log %d, sentinel log %d; want 1 and 0", master.logLen(), sentinel.logLen())
	}
	req := master.lastInsert(t)
	if req.Message != "via sentinel" || req.WriteConcern != 2 || req.Key != "key-1" {
		t.Errorf("master got %+v", req)
	}
	if h := rec.last(t); h.Get(ForwardedHeader) != "1" || h.Get(IdempotencyKeyHeader) != "key-1" {
		t.Errorf("forwarded headers %v", h)
	}
	// The master's errors come back verbatim.
	resp, got = do(t, "POST", url+"/insert", `{"message": "a", "writeConcern": 3}`, nil)
	if resp.StatusCode != 200 {
		t.Errorf("status %d: %s", resp.StatusCode, got)
	}
	master.setInsertErr(ErrNoQuorum)
	resp, got = do(t, "POST", url+"/insert", `{"message": "a"}`, nil)
	checkError(t, resp, got, 503, "no_quorum", "")
	if resp.Header.Get("Retry-After") == "" {
		t.Errorf("relayed 503 lost its Retry-After")
	}
}

func TestForwardLoopGuard(t *testing.T) {
	master, _, _, url := cluster(t)
	// The "master" also thinks someone else is the master.
	master.setInsertErr(&NotLeaderError{LeaderID: "s", LeaderHTTP: strings.TrimPrefix(url, "http://")})
	resp, body := do(t, "POST", url+"/insert", `{"message": "a"}`, nil)
	checkError(t, resp, body, 503, "no_master", "")
	if resp.Header.Get("Retry-After") == "" {
		t.Errorf("503 without Retry-After")
	}
	// sentinel → master → sentinel (hops used up) → 503: the master saw
	// it once, the sentinel twice; no loop.
	if got := master.insertCount(); got != 1 {
		t.Errorf("master saw %d inserts, want exactly 1 (no loop)", got)
	}
	// A request that has used up its hops is never forwarded again.
	resp, body = do(t, "POST", url+"/insert", `{"message": "a"}`, map[string]string{ForwardedHeader: strconv.Itoa(MaxForwardHops)})
	checkError(t, resp, body, 503, "no_master", "")
	if got := master.insertCount(); got != 1 {
		t.Errorf("master saw %d inserts, want still 1", got)
	}
}

func TestForwardDialFailure(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	n := newFakeNode(3)
	n.insertErr = &NotLeaderError{LeaderID: "m", LeaderHTTP: dead}
	srv := serve(t, n, Options{})
	resp, body := do(t, "POST", srv.URL+"/insert", `{"message": "a"}`, nil)
	checkError(t, resp, body, 503, "no_master", "")
	if resp.Header.Get("Retry-After") == "" {
		t.Errorf("503 without Retry-After")
	}
}

func TestForwardNoAnswer(t *testing.T) {
	// A master that takes the whole request, then hangs up.
	var got sync.WaitGroup
	got.Add(1)
	hangup := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		defer got.Done()
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	defer hangup.Close()
	n := newFakeNode(3)
	n.insertErr = &NotLeaderError{LeaderID: "m", LeaderHTTP: hangup.URL}
	srv := serve(t, n, Options{})
	resp, body := do(t, "POST", srv.URL+"/insert", `{"message": "a"}`, nil)
	eb := checkError(t, resp, body, 504, "forward_failed", "")
	if eb.ID != 0 {
		t.Errorf("id %d on a forward failure", eb.ID)
	}
	got.Wait()
}

func TestForwardRead(t *testing.T) {
	master, _, _, url := cluster(t)
	master.fill(10)
	resp, body := do(t, "GET", url+"/get-all?from=4&limit=3&readConcern=linearizable", "", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	var msgs []Message
	if err := json.Unmarshal(body, &msgs); err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 3 || msgs[0].ID != 4 || msgs[2].ID != 6 {
		t.Errorf("got %+v, want ids 4..6", msgs)
	}
}
