package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// checkError asserts a JSON error answer with the code and an error
// sentence that mentions field.
func checkError(t *testing.T, resp *http.Response, body []byte, status int, code, field string) ErrorBody {
	t.Helper()
	if resp.StatusCode != status {
		t.Errorf("status = %d, want %d (body %s)", resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var eb ErrorBody
	if err := json.Unmarshal(body, &eb); err != nil {
		t.Fatalf("body is not JSON: %v: %s", err, body)
	}
	if eb.Code != code {
		t.Errorf("code = %q, want %q (error %q)", eb.Code, code, eb.Error)
	}
	if eb.Error == "" {
		t.Errorf("error sentence is empty")
	}
	if field != "" && !strings.Contains(eb.Error, field) {
		t.Errorf("error %q does not name %q", eb.Error, field)
	}
	return eb
}

func TestBadRequests(t *testing.T) {
	const N = 3
	big := `{"message": "` + strings.Repeat("x", 2<<20) + `"}`
	long := strings.Repeat("k", MaxKeyBytes+1)
	tests := []struct {
		method, path, body string
		hdr                map[string]string
		status             int
		code, field        string
	}{
		{"POST", "/insert", `{"message": "a"`, nil, 400, "bad_json", "JSON"},
		{"POST", "/insert", `not json`, nil, 400, "bad_json", "JSON"},
		{"POST", "/insert", ``, nil, 400, "bad_json", "empty"},
		{"POST", "/insert", `["a"]`, nil, 400, "bad_json", "object"},
		{"POST", "/insert", `"a"`, nil, 400, "bad_json", "object"},
		{"POST", "/insert", `null`, nil, 400, "bad_json", "object"},
		{"POST", "/insert", `{"message": "a"} {"message": "b"}`, nil, 400, "bad_json", "one JSON object"},
		{"POST", "/insert", `{}`, nil, 400, "bad_message", "message"},
		{"POST", "/insert", `{"writeConcern": 1}`, nil, 400, "bad_message", "message"},
		{"POST", "/insert", `{"message": ""}`, nil, 400, "bad_message", "message"},
		{"POST", "/insert", `{"message": 5}`, nil, 400, "bad_message", "message"},
		{"POST", "/insert", `{"message": null}`, nil, 400, "bad_message", "message"},
		{"POST", "/insert", `{"message": ["a"]}`, nil, 400, "bad_message", "message"},
		{"POST", "/insert", `{"message": "a", "writeConcern": 0}`, nil, 400, "bad_write_concern", "writeConcern must be an integer from 1 to 3"},
		{"POST", "/insert", `{"message": "a", "writeConcern": -1}`, nil, 400, "bad_write_concern", "got -1"},
		{"POST", "/insert", `{"message": "a", "writeConcern": 4}`, nil, 400, "bad_write_concern", "got 4"},
		{"POST", "/insert", `{"message": "a", "writeConcern": "abc"}`, nil, 400, "bad_write_concern", `got "abc"`},
		{"POST", "/insert", `{"message": "a", "writeConcern": "Majority"}`, nil, 400, "bad_write_concern", "writeConcern"},
		{"POST", "/insert", `{"message": "a", "writeConcern": "2"}`, nil, 400, "bad_write_concern", "writeConcern"},
		{"POST", "/insert", `{"message": "a", "writeConcern": 1.5}`, nil, 400, "bad_write_concern", `writeConcern must be an integer from 1 to 3, "majority" or "all"; got 1.5`},
		{"POST", "/insert", `{"message": "a", "writeConcern": 2.0}`, nil, 400, "bad_write_concern", "got 2.0"},
		{"POST", "/insert", `{"message": "a", "writeConcern": 1e0}`, nil, 400, "bad_write_concern", "got 1e0"},
		{"POST", "/insert", `{"message": "a", "writeConcern": true}`, nil, 400, "bad_write_concern", "got true"},
		{"POST", "/insert", `{"message": "a", "writeConcern": null}`, nil, 400, "bad_write_concern", "got null"},
		{"POST", "/insert", `{"message": "a", "writeConcern": {}}`, nil, 400, "bad_write_concern", "got {}"},
		{"POST", "/insert", `{"message": "a", "writeConcern": [1]}`, nil, 400, "bad_write_concern", "writeConcern"},
		{"POST", "/insert", `{"message": "a", "writeConcern": 99999999999999999999}`, nil, 400, "bad_write_concern", "writeConcern"},
		{"POST", "/insert", `{"message": "a", "extra": 1}`, nil, 400, "unknown_field", `"extra"`},
		{"POST", "/insert", `{"Message": "a"}`, nil, 400, "unknown_field", `"Message"`},
		{"POST", "/insert", `{"message": "a", "key": 7}`, nil, 400, "bad_key", "key"},
		{"POST", "/insert", `{"message": "a", "key": "` + long + `"}`, nil, 400, "bad_key", "key"},
		{"POST", "/insert", `{"message": "a"}`, map[string]string{"Idempotency-Key": long}, 400, "bad_key", "Idempotency-Key"},
		{"POST", "/insert", `{"message": "a", "key": "k1"}`, map[string]string{"Idempotency-Key": "k2"}, 400, "bad_key", "Idempotency-Key"},
		{"POST", "/insert", `{"message": "a", "timeoutMs": 0}`, nil, 400, "bad_timeout", "timeoutMs"},
		{"POST", "/insert", `{"message": "a", "timeoutMs": -5}`, nil, 400, "bad_timeout", "timeoutMs"},
		{"POST", "/insert", `{"message": "a", "timeoutMs": 1.5}`, nil, 400, "bad_timeout", "timeoutMs"},
		{"POST", "/insert", `{"message": "a", "timeoutMs": "100"}`, nil, 400, "bad_timeout", "timeoutMs"},
		{"POST", "/insert", `{"message": "a", "timeoutMs": 3600001}`, nil, 400, "bad_timeout", "timeoutMs"},
		{"POST", "/insert", big, nil, 413, "too_large", "limit"},
		{"GET", "/insert", ``, nil, 405, "method_not_allowed", "POST"},
		{"PUT", "/insert", `{"message": "a"}`, nil, 405, "method_not_allowed", "POST"},
		{"POST", "/get-all", `{}`, nil, 405, "method_not_allowed", "GET"},
		{"DELETE", "/status", ``, nil, 405, "method_not_allowed", "GET"},
		{"GET", "/nope", ``, nil, 404, "not_found", "/nope"},
		{"POST", "/", ``, nil, 404, "not_found", "/"},
		{"GET", "/get-all?from=0", ``, nil, 400, "bad_from", "from"},
		{"GET", "/get-all?from=-1", ``, nil, 400, "bad_from", "from"},
		{"GET", "/get-all?from=abc", ``, nil, 400, "bad_from", "from"},
		{"GET", "/get-all?from=1&from=2", ``, nil, 400, "bad_from", "from"},
		{"GET", "/get-all?limit=-1", ``, nil, 400, "bad_limit", "limit"},
		{"GET", "/get-all?limit=1.5", ``, nil, 400, "bad_limit", "limit"},
		{"GET", "/get-all?readConcern=strong", ``, nil, 400, "bad_read_concern", "readConcern"},
		{"GET", "/get-all?readConcern=", ``, nil, 400, "bad_read_concern", "readConcern"},
	}
	n := newFakeNode(N)
	n.fill(5)
	srv := serve(t, n, Options{})
	for i, tt := range tests {
		name := tt.method + " " + tt.path + " " + tt.body
		if len(name) > 80 {
			name = name[:80]
		}
		resp, body := do(t, tt.method, srv.URL+tt.path, tt.body, tt.hdr)
		t.Run("", func(t *testing.T) {
			t.Logf("#%d %s", i, name)
			checkError(t, resp, body, tt.status, tt.code, tt.field)
			if tt.status == 405 && resp.Header.Get("Allow") == "" {
				t.Errorf("405 without an Allow header")
			}
			if got := n.logLen(); got != 5 {
				t.Errorf("log length = %d after a refused request, want 5", got)
			}
			if got := n.insertCount(); got != 0 {
				t.Errorf("a refused request reached Node.Insert (%d inserts)", got)
			}
		})
	}
}

func TestInsertWriteConcerns(t *testing.T) {
	tests := []struct {
		body     string
		wantWC   int
		wantWord string
		echo     string // the answer's writeConcern, as JSON
	}{
		{`{"message": "a"}`, 0, "majority", `"majority"`},
		{`{"message": "a", "writeConcern": "majority"}`, 0, "majority", `"majority"`},
		{`{"message": "a", "writeConcern": "all"}`, 0, "all", `"all"`},
		{`{"message": "a", "writeConcern": 1}`, 1, "", `1`},
		{`{"message": "a", "writeConcern": 2}`, 2, "", `2`},
		{`{"message": "a", "writeConcern": 3}`, 3, "", `3`},
		{` {"writeConcern":3,"message":"a"} `, 3, "", `3`},
	}
	for i, tt := range tests {
		n := newFakeNode(3)
		srv := serve(t, n, Options{})
		resp, body := do(t, "POST", srv.URL+"/insert", tt.body, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("#%d: status %d: %s", i, resp.StatusCode, body)
		}
		var got map[string]json.RawMessage
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatalf("#%d: %v", i, err)
		}
		if string(got["writeConcern"]) != tt.echo || string(got["id"]) != "1" {
			t.Errorf("#%d: answer %s, want id 1 and writeConcern %s", i, body, tt.echo)
		}
		req := n.lastInsert(t)
		if req.WriteConcern != tt.wantWC || req.Word != tt.wantWord || req.Message != "a" {
			t.Errorf("#%d: node got %+v, want WriteConcern %d Word %q", i, req, tt.wantWC, tt.wantWord)
		}
	}
}

func TestInsertIDsAndKeys(t *testing.T) {
	n := newFakeNode(3)
	srv := serve(t, n, Options{DefaultTimeout: 7 * time.Second})
	for want := 1; want <= 3; want++ {
		_, body := do(t, "POST", srv.URL+"/insert", `{"message": "m"}`, nil)
		var res InsertResult
		if err := json.Unmarshal(body, &res); err != nil || res.ID != uint64(want) {
			t.Fatalf("answer %s (%v), want id %d", body, err, want)
		}
	}
	if got := n.lastInsert(t).Timeout; got != 7*time.Second {
		t.Errorf("Timeout = %v, want the default 7s", got)
	}
	// Key in the body, then the same key in the header: one append.
	do(t, "POST", srv.URL+"/insert", `{"message": "k", "key": "abc", "timeoutMs": 1500}`, nil)
	req := n.lastInsert(t)
	if req.Key != "abc" || req.Timeout != 1500*time.Millisecond {
		t.Errorf("node got %+v, want key abc and timeout 1.5s", req)
	}
	_, body := do(t, "POST", srv.URL+"/insert", `{"message": "k"}`, map[string]string{"Idempotency-Key": "abc"})
	var res InsertResult
	if err := json.Unmarshal(body, &res); err != nil || res.ID != 4 || !res.Duplicate {
		t.Errorf("retry answer %s, want id 4 duplicate", body)
	}
	if n.lastInsert(t).Key != "abc" {
		t.Errorf("header key not passed on")
	}
	// Both, equal: fine.
	resp, body := do(t, "POST", srv.URL+"/insert", `{"message": "k", "key": "abc"}`, map[string]string{"Idempotency-Key": "abc"})
	if resp.StatusCode != 200 {
		t.Errorf("equal body and header keys: %d %s", resp.StatusCode, body)
	}
	if n.logLen() != 4 {
		t.Errorf("log length %d, want 4", n.logLen())
	}
}

func TestInsertNodeErrors(t *testing.T) {
	tests := []struct {
		err        error
		status     int
		code       string
		retryAfter bool
		id         uint64
	}{
		{ErrNoLeader, 503, "no_master", true, 0},
		{ErrNoQuorum, 503, "no_quorum", true, 0},
		{&NotLeaderError{LeaderID: "x"}, 503, "no_master", true, 0},
		{&OutcomeUnknownError{ID: 9, Term: 2, Acks: 1, Code: "timeout"}, 504, "timeout", false, 9},
		{&OutcomeUnknownError{ID: 10, Term: 2, Acks: 1, Code: "leadership_lost"}, 504, "leadership_lost", false, 10},
		{&BadRequestError{Field: "writeConcern", Msg: "writeConcern 3 is above the 2 voters"}, 400, "bad_write_concern", false, 0},
	}
	for i, tt := range tests {
		n := newFakeNode(3)
		n.insertErr = tt.err
		srv := serve(t, n, Options{})
		resp, body := do(t, "POST", srv.URL+"/insert", `{"message": "a", "writeConcern": 3}`, nil)
		t.Logf("#%d %v", i, tt.err)
		eb := checkError(t, resp, body, tt.status, tt.code, "")
		if got := resp.Header.Get("Retry-After") != ""; got != tt.retryAfter {
			t.Errorf("#%d: Retry-After present = %v, want %v", i, got, tt.retryAfter)
		}
		if eb.ID != tt.id {
			t.Errorf("#%d: id = %d, want %d", i, eb.ID, tt.id)
		}
		if tt.status == 504 {
			var raw map[string]any
			_ = json.Unmarshal(body, &raw)
			if raw["term"] != 2.0 || raw["acks"] != 1.0 {
				t.Errorf("#%d: 504 body %s lacks term/acks", i, body)
			}
		}
	}
}

func TestPanicIsRecovered(t *testing.T) {
	n := newFakeNode(3)
	n.insertHook = func(ctx context.Context, req InsertRequest) error { panic("boom") }
	srv := serve(t, n, Options{})
	resp, body := do(t, "POST", srv.URL+"/insert", `{"message": "a"}`, nil)
	checkError(t, resp, body, 500, "internal", "")
	// The server still serves.
	resp, _ = do(t, "GET", srv.URL+"/status", "", nil)
	if resp.StatusCode != 200 {
		t.Errorf("status after a panic: %d", resp.StatusCode)
	}
}
