package api

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func getAll(t *testing.T, url string) []Message {
	t.Helper()
	resp, body := do(t, "GET", url, "", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	var msgs []Message
	if err := json.Unmarshal(body, &msgs); err != nil {
		t.Fatalf("GET %s: not a JSON array: %v", url, err)
	}
	return msgs
}

func TestGetAllStreamsLargeLog(t *testing.T) {
	const total = 100_000
	n := newFakeNode(3)
	n.fill(total)
	srv := serve(t, n, Options{})
	tests := []struct {
		query      string
		first, cnt uint64
	}{
		{"", 1, total},
		{"?from=99000&limit=0", 99000, total - 98999},
		{"?from=50000&limit=5000", 50000, 5000},
		{"?from=99999&limit=10", 99999, 2},
		{"?from=100000", 100000, 1},
		{"?from=100001", 0, 0},
		{"?from=7&limit=1000&readConcern=majority", 7, 1000},
		{"?limit=5&readConcern=local", 1, 5},
		{"?from=12345&limit=1&readConcern=linearizable", 12345, 1},
	}
	for i, tt := range tests {
		msgs := getAll(t, srv.URL+"/get-all"+tt.query)
		if uint64(len(msgs)) != tt.cnt {
			t.Errorf("#%d %s: %d messages, want %d", i, tt.query, len(msgs), tt.cnt)
			continue
		}
		for j, m := range msgs {
			if want := tt.first + uint64(j); m.ID != want || m.Message == "" || m.Timestamp.IsZero() {
				t.Errorf("#%d %s: element %d = %+v, want id %d", i, tt.query, j, m, want)
				break
			}
		}
	}
}

func TestGetAllEmptyAndFormat(t *testing.T) {
	n := newFakeNode(3)
	srv := serve(t, n, Options{})
	_, body := do(t, "GET", srv.URL+"/get-all", "", nil)
	if strings.TrimSpace(string(body)) != "[]" {
		t.Errorf("empty log = %q, want []", body)
	}
	n.mu.Lock()
	n.log = append(n.log, Message{ID: 1, Message: `a "<b>" & c`, Timestamp: time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)})
	n.mu.Unlock()
	_, body = do(t, "GET", srv.URL+"/get-all", "", nil)
	var raw []map[string]any
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"id": 1.0, "message": `a "<b>" & c`, "timestamp": "2024-05-06T07:08:09.123456789Z"}
	if len(raw) != 1 || len(raw[0]) != 3 || raw[0]["id"] != want["id"] || raw[0]["message"] != want["message"] || raw[0]["timestamp"] != want["timestamp"] {
		t.Errorf("got %s, want %v", body, want)
	}
}

// TestGetAllIsStreamed checks that entries reach the client while Read is
// still running.
func TestGetAllIsStreamed(t *testing.T) {
	n := newFakeNode(3)
	n.fill(1000)
	n.readGate = make(chan struct{})
	n.gateAfter = 200
	srv := serve(t, n, Options{})
	resp, err := http.Get(srv.URL + "/get-all")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	dec := json.NewDecoder(br)
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		t.Fatalf("first token %v %v", tok, err)
	}
	// At least the first flushed batch arrives before the gate opens.
	for i := 1; i <= flushEvery; i++ {
		var m Message
		if err := dec.Decode(&m); err != nil || m.ID != uint64(i) {
			t.Fatalf("element %d: %+v %v", i, m, err)
		}
	}
	close(n.readGate)
	rest := flushEvery
	for dec.More() {
		var m Message
		if err := dec.Decode(&m); err != nil {
			t.Fatal(err)
		}
		rest++
		if m.ID != uint64(rest) {
			t.Fatalf("id %d at position %d", m.ID, rest)
		}
	}
	if rest != 1000 {
		t.Errorf("%d messages, want 1000", rest)
	}
}

func TestGetAllErrorBeforeStream(t *testing.T) {
	tests := []struct {
		err    error
		status int
		code   string
		after  int
	}{
		{ErrNoLeader, 503, "no_master", 0},
		{ErrNoQuorum, 503, "no_quorum", 0},
		{ErrNoLeader, 503, "no_master", 9}, // 9 buffered, nothing flushed yet: still a JSON error
		{&NotLeaderError{LeaderID: "m"}, 503, "no_master", 0},
		{&BadRequestError{Field: "readConcern", Msg: "readConcern linearizable needs a master"}, 400, "bad_read_concern", 0},
		{errors.New("disk on fire"), 500, "internal", 0},
	}
	for i, tt := range tests {
		n := newFakeNode(3)
		n.fill(10)
		n.readErr, n.readErrAfter = tt.err, tt.after
		srv := serve(t, n, Options{})
		resp, body := do(t, "GET", srv.URL+"/get-all?readConcern=linearizable", "", nil)
		t.Logf("#%d %v", i, tt.err)
		checkError(t, resp, body, tt.status, tt.code, "")
		if tt.status == 503 && resp.Header.Get("Retry-After") == "" {
			t.Errorf("#%d: 503 without Retry-After", i)
		}
	}
}

func TestGetAllErrorMidStreamBreaksAnswer(t *testing.T) {
	n := newFakeNode(3)
	n.fill(1000)
	n.readErr, n.readErrAfter = errors.New("disk on fire"), 500
	srv := serve(t, n, Options{})
	resp, err := http.Get(srv.URL + "/get-all")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(resp.Body)
	if err == nil {
		t.Errorf("the broken stream read cleanly (%d bytes)", len(body))
	}
	var msgs []Message
	if json.Unmarshal(body, &msgs) == nil {
		t.Errorf("a broken stream parsed as a valid array of %d", len(msgs))
	}
}

func TestStatusHealthMetrics(t *testing.T) {
	n := newFakeNode(3)
	srv := serve(t, n, Options{})
	_, body := do(t, "GET", srv.URL+"/status", "", nil)
	var st Status
	if err := json.Unmarshal(body, &st); err != nil || st.ID != "n1" || st.Role != "master" || len(st.Members) != 1 {
		t.Errorf("status %s (%v)", body, err)
	}
	resp, body := do(t, "GET", srv.URL+"/health", "", nil)
	var h Health
	if err := json.Unmarshal(body, &h); err != nil || resp.StatusCode != 200 || h.Status != "ok" || h.Role != "master" ||
		len(h.Members) != 1 || h.Members[0].Health != Healthy {
		t.Errorf("health %d %s (%v)", resp.StatusCode, body, err)
	}
	do(t, "GET", srv.URL+"/nope", "", nil)
	_, body = do(t, "GET", srv.URL+"/metrics", "", nil)
	for _, want := range []string{
		`replog_http_requests_total{code="200",route="/status"} 1`,
		`replog_http_requests_total{code="404",route="unmatched"} 1`,
		`replog_http_request_duration_seconds_bucket{route="/health"`,
		`go_goroutines`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestSharedRegistry(t *testing.T) {
	reg := NewRegistry()
	// Two handlers on one registry must not panic.
	_ = NewHandler(newFakeNode(1), Options{Registry: reg})
	_ = NewHandler(newFakeNode(1), Options{Registry: reg})
}
