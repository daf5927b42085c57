package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestSelfCheck is DESIGN §6 "The self-check": master and sentinel 1 up,
// sentinel 2 configured but down. w=1 and w=2 answer; w=3 waits; a later
// w=1 answers while w=3 still waits; starting sentinel 2 releases w=3 and
// sentinel 2 shows all four messages in order.
func TestSelfCheck(t *testing.T) {
	c := newCluster(t, 3, nil)
	c.start(0)
	c.start(1)
	m := c.procs[0].URL()
	c.master(10 * time.Second)

	if a := post(t, m, map[string]any{"message": "Msg1", "writeConcern": 1}); a.Status != 200 || a.ID != 1 {
		t.Fatalf("Msg1 w=1: got %+v, want 200 id 1", a)
	}
	if a := post(t, m, map[string]any{"message": "Msg2", "writeConcern": 2}); a.Status != 200 || a.ID != 2 {
		t.Fatalf("Msg2 w=2: got %+v, want 200 id 2", a)
	}
	msg3 := make(chan insertAnswer, 1)
	go func() {
		// post calls t.Fatalf only from the test goroutine; do the request by hand.
		resp, err := http.Post(m+"/insert", "application/json", strings.NewReader(`{"message":"Msg3","writeConcern":3}`))
		if err != nil {
			msg3 <- insertAnswer{Status: -1, Error: err.Error()}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var a insertAnswer
		jsonUnmarshal(b, &a)
		a.Status = resp.StatusCode
		a.Error = string(b)
		msg3 <- a
	}()
	// Msg3 cannot be acknowledged by three nodes while one is down.
	waitFor(t, 5*time.Second, "Msg3 to be in the master's log", func() bool {
		s, err := status(m)
		return err == nil && s.LastID >= 3
	})
	if a := post(t, m, map[string]any{"message": "Msg4", "writeConcern": 1}); a.Status != 200 || a.ID != 4 {
		t.Fatalf("Msg4 w=1: got %+v, want 200 id 4", a)
	}
	select {
	case a := <-msg3:
		t.Fatalf("Msg3 (w=3) answered %+v while sentinel 2 is down", a)
	default:
	}

	c.start(2)
	select {
	case a := <-msg3:
		if a.Status != 200 || a.ID != 3 {
			t.Fatalf("Msg3 after sentinel 2 started: got status %d id %d body %s, want 200 id 3", a.Status, a.ID, a.Error)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Msg3 still waiting 15s after sentinel 2 started")
	}
	want := []string{"1:Msg1", "2:Msg2", "3:Msg3", "4:Msg4"}
	waitFor(t, 5*time.Second, "sentinel 2 to hold Msg1..Msg4", func() bool {
		return slices.Equal(messagesOf(getAll(t, c.procs[2].URL(), "")), want)
	})
	for _, p := range c.procs {
		if got := messagesOf(getAll(t, p.URL(), "")); !slices.Equal(got, want) {
			t.Errorf("%s /get-all = %v, want %v", p.Name, got, want)
		}
	}
}

// TestIdempotentInsert: the same key twice gives the same id and one entry,
// whether the key comes in the body or the header, and through a sentinel.
func TestIdempotentInsert(t *testing.T) {
	c := newCluster(t, 3, nil)
	c.startAll()
	mi := c.master(10 * time.Second)
	m := c.procs[mi].URL()
	s := c.procs[(mi+1)%3].URL()

	a1 := post(t, m, map[string]any{"message": "pay 10", "key": "k-1"})
	a2 := post(t, m, map[string]any{"message": "pay 10", "key": "k-1"})
	a3 := post(t, s, map[string]any{"message": "pay 10", "key": "k-1"}) // forwarded
	if a1.Status != 200 || a2.Status != 200 || a3.Status != 200 {
		t.Fatalf("statuses %d %d %d, want 200s (%+v %+v %+v)", a1.Status, a2.Status, a3.Status, a1, a2, a3)
	}
	if a1.ID != a2.ID || a1.ID != a3.ID {
		t.Fatalf("ids %d %d %d, want one id", a1.ID, a2.ID, a3.ID)
	}
	req, _ := http.NewRequest("POST", m+"/insert", bytes.NewReader([]byte(`{"message":"hdr"}`)))
	req.Header.Set("Idempotency-Key", "k-2")
	var ids []uint64
	for i := 0; i < 2; i++ {
		r2 := req.Clone(req.Context())
		r2.Body = io.NopCloser(bytes.NewReader([]byte(`{"message":"hdr"}`)))
		resp, err := http.DefaultClient.Do(r2)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("header-keyed insert: %d %s", resp.StatusCode, b)
		}
		var a insertAnswer
		if err := jsonUnmarshal(b, &a); err != nil {
			t.Fatalf("header-keyed insert: %v in %s", err, b)
		}
		ids = append(ids, a.ID)
	}
	if ids[0] != ids[1] {
		t.Fatalf("header key ids %v differ", ids)
	}
	got := messagesOf(getAll(t, m, ""))
	want := []string{"1:pay 10", "2:hdr"}
	if !slices.Equal(got, want) {
		t.Fatalf("/get-all = %v, want %v", got, want)
	}
}

// TestBadInputChangesNothing posts every kind of bad insert to a real
// master: each is a 4xx JSON error naming the problem, and the log is the
// same afterwards.
func TestBadInputChangesNothing(t *testing.T) {
	c := newCluster(t, 3, nil)
	c.startAll()
	m := c.procs[c.master(10*time.Second)].URL()
	if a := post(t, m, map[string]any{"message": "keep"}); a.Status != 200 {
		t.Fatalf("seed insert: %+v", a)
	}
	before := getAll(t, m, "")
	big := strings.Repeat("x", 2<<20)
	cases := []struct {
		name, method, path, body string
		status                   int
		code, mention            string
	}{
		{"invalid json", "POST", "/insert", `{"message":`, 400, "bad_json", "JSON"},
		{"not an object", "POST", "/insert", `[1,2]`, 400, "bad_json", "object"},
		{"missing message", "POST", "/insert", `{"writeConcern":1}`, 400, "bad_message", "message"},
		{"empty message", "POST", "/insert", `{"message":""}`, 400, "bad_message", "message"},
		{"message not a string", "POST", "/insert", `{"message":5}`, 400, "bad_message", "message"},
		{"writeConcern 0", "POST", "/insert", `{"message":"a","writeConcern":0}`, 400, "bad_write_concern", "writeConcern"},
		{"writeConcern -1", "POST", "/insert", `{"message":"a","writeConcern":-1}`, 400, "bad_write_concern", "writeConcern"},
		{"writeConcern N+1", "POST", "/insert", `{"message":"a","writeConcern":4}`, 400, "bad_write_concern", "writeConcern"},
		{"writeConcern abc", "POST", "/insert", `{"message":"a","writeConcern":"abc"}`, 400, "bad_write_concern", "writeConcern"},
		{"writeConcern 1.5", "POST", "/insert", `{"message":"a","writeConcern":1.5}`, 400, "bad_write_concern", "writeConcern"},
		{"writeConcern true", "POST", "/insert", `{"message":"a","writeConcern":true}`, 400, "bad_write_concern", "writeConcern"},
		{"2 MiB message", "POST", "/insert", `{"message":"` + big + `"}`, 413, "too_large", ""},
		{"wrong method insert", "GET", "/insert", ``, 405, "", ""},
		{"wrong method get-all", "POST", "/get-all", `{}`, 405, "", ""},
		{"unknown path", "GET", "/nope", ``, 404, "", ""},
		{"bad from", "GET", "/get-all?from=abc", ``, 400, "", "from"},
		{"bad readConcern", "GET", "/get-all?readConcern=eventual", ``, 400, "", "readConcern"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, m+tc.path, strings.NewReader(tc.body))
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("#%d: %v", i, err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("#%d %s: status %d, want %d (body %.200s)", i, tc.name, resp.StatusCode, tc.status, b)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("#%d: Content-Type %q, want JSON", i, ct)
			}
			var e struct{ Error, Code string }
			if err := jsonUnmarshal(b, &e); err != nil || e.Error == "" {
				t.Fatalf("#%d: body %.200s is not a JSON error (%v)", i, b, err)
			}
			if tc.code != "" && e.Code != tc.code {
				t.Errorf("#%d: code %q, want %q (error %q)", i, e.Code, tc.code, e.Error)
			}
			if tc.mention != "" && !strings.Contains(e.Error, tc.mention) {
				t.Errorf("#%d: error %q does not name %q", i, e.Error, tc.mention)
			}
		})
	}
	after := getAll(t, m, "")
	if !slices.Equal(messagesOf(after), messagesOf(before)) {
		t.Fatalf("log changed by bad input: before %v, after %v", messagesOf(before), messagesOf(after))
	}
}

// TestKill9EveryNodeKeepsAcknowledged: concurrent majority writes, kill -9
// of every node while writes are in flight, restart from the data
// directories: every acknowledged message is there at its id, on every node,
// in the same order.
func TestKill9EveryNodeKeepsAcknowledged(t *testing.T) {
	c := newCluster(t, 3, nil)
	c.startAll()
	m := c.procs[c.master(10*time.Second)].URL()

	var mu sync.Mutex
	acked := map[uint64]string{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 5 * time.Second}
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				msg := fmt.Sprintf("w%d-%d", w, i)
				resp, err := client.Post(m+"/insert", "application/json", strings.NewReader(`{"message":"`+msg+`","writeConcern":"majority"}`))
				if err != nil {
					continue // outcome unknown: not counted as acknowledged
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 {
					var a insertAnswer
					if jsonUnmarshal(b, &a) == nil {
						mu.Lock()
						acked[a.ID] = msg
						mu.Unlock()
					}
				}
			}
		}()
	}
	waitFor(t, 20*time.Second, "300 acknowledged writes", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= 300
	})
	for i := range c.procs {
		c.kill(i)
	}
	close(stop)
	wg.Wait()
	mu.Lock()
	n := len(acked)
	var maxID uint64
	for id := range acked {
		maxID = max(maxID, id)
	}
	mu.Unlock()
	t.Logf("%d majority writes acknowledged before kill -9 of every node (highest id %d)", n, maxID)

	c.startAll()
	c.master(15 * time.Second)
	var final []logMsg
	for i, p := range c.procs {
		var got []logMsg
		waitFor(t, 10*time.Second, p.Name+" to hold every acknowledged write", func() bool {
			got = getAll(t, p.URL(), "")
			for id := range acked {
				if id > uint64(len(got)) {
					return false
				}
			}
			return true
		})
		for id, msg := range acked {
			if got[id-1].ID != id || got[id-1].Message != msg {
				t.Fatalf("%s: entry %d = %+v, want acknowledged %q", p.Name, id, got[id-1], msg)
			}
		}
		for k, e := range got {
			if e.ID != uint64(k+1) {
				t.Fatalf("%s: position %d holds id %d: a gap or reordering", p.Name, k, e.ID)
			}
		}
		if i == 0 {
			final = got
		} else if l := min(len(final), len(got)); !slices.Equal(messagesOf(final[:l]), messagesOf(got[:l])) {
			t.Fatalf("%s and %s disagree on their common prefix", c.procs[0].Name, p.Name)
		}
	}
	// The restarted cluster keeps taking writes, at the next id.
	mi := c.master(10 * time.Second)
	a := post(t, c.procs[mi].URL(), map[string]any{"message": "after-restart"})
	if a.Status != 200 || a.ID <= maxID {
		t.Fatalf("insert after restart: %+v, want 200 with id > %d", a, maxID)
	}
}
