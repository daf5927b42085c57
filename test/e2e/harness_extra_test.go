package e2e

// Helpers for the failover tests (failover_test.go): bounded HTTP calls that
// never call t.Fatal (so goroutines may use them), signals, a load generator
// that records every attempt, and the history checks.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// quick bounds every probe: a SIGSTOPped node accepts the TCP connection
// (the kernel does) but never answers, so no probe may wait unbounded.
var quick = &http.Client{Timeout: 2 * time.Second}

// fullStatus is /status with the fields the failover tests look at.
type fullStatus struct {
	ID     string `json:"id"`
	Role   string `json:"role"`
	Term   uint64 `json:"term"`
	Leader *struct {
		ID   string `json:"id"`
		HTTP string `json:"http"`
		GRPC string `json:"grpc"`
	} `json:"leader"`
	LastID   uint64 `json:"lastId"`
	CommitID uint64 `json:"commitId"`
	ReadOnly bool   `json:"readOnly"`
}

func (s fullStatus) leaderID() string {
	if s.Leader == nil {
		return ""
	}
	return s.Leader.ID
}

// statusOf is a bounded GET /status.
func statusOf(url string) (fullStatus, error) {
	var s fullStatus
	resp, err := quick.Get(url + "/status")
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return s, fmt.Errorf("GET %s/status: status %d", url, resp.StatusCode)
	}
	err = json.NewDecoder(resp.Body).Decode(&s)
	return s, err
}

// alive reports whether process i is running.
func (c *cluster) alive(i int) bool { return c.procs[i].Alive() }

// live lists the running processes.
func (c *cluster) live() []int {
	var out []int
	for i := range c.procs {
		if c.alive(i) {
			out = append(out, i)
		}
	}
	return out
}

// urls are the base URLs of the processes at idx.
func (c *cluster) urls(idx []int) []string {
	var out []string
	for _, i := range idx {
		out = append(out, c.procs[i].URL())
	}
	return out
}

// agreedMaster returns the index of the master when every node in among
// answers /status, exactly one says "master", and every one names it as
// leader; otherwise -1 and why.
func (c *cluster) agreedMaster(among []int) (int, string) {
	master := -1
	sts := map[int]fullStatus{}
	for _, i := range among {
		s, err := statusOf(c.procs[i].URL())
		if err != nil {
			return -1, fmt.Sprintf("%s: %v", c.procs[i].Name, err)
		}
		sts[i] = s
		if s.Role == "master" {
			if master >= 0 {
				return -1, fmt.Sprintf("two masters: %s and %s", c.procs[master].Name, c.procs[i].Name)
			}
			master = i
		}
	}
	if master < 0 {
		return -1, "no master"
	}
	want := sts[master].ID
	for _, i := range among {
		if got := sts[i].leaderID(); got != want {
			return -1, fmt.Sprintf("%s names leader %q, the master is %s (%q)", c.procs[i].Name, got, c.procs[master].Name, want)
		}
	}
	return master, ""
}

// waitAgreedMaster waits (bounded) until the live nodes in among agree on
// one master, and returns it.
func (c *cluster) waitAgreedMaster(t *testing.T, among []int, timeout time.Duration) int {
	t.Helper()
	var why string
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		var m int
		if m, why = c.agreedMaster(among); m >= 0 {
			return m
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("after %v the nodes %v do not agree on one master: %s", timeout, c.names(among), why)
	return -1
}

func (c *cluster) names(idx []int) []string {
	var out []string
	for _, i := range idx {
		out = append(out, c.procs[i].Name)
	}
	return out
}

// signal sends sig to process i.
func (c *cluster) signal(i int, sig syscall.Signal) error { return c.procs[i].Signal(sig) }

// terminate sends SIGTERM to process i and waits up to timeout for it to
// exit (killing it after that); it returns how long the exit took.
func (c *cluster) terminate(i int, timeout time.Duration) (time.Duration, bool) {
	return c.procs[i].Terminate(timeout)
}

// transport error leaves the outcome unknown).
func tryPost(hc *http.Client, url string, body any) (a insertAnswer, sent bool, err error) {
	b, _ := json.Marshal(body)
	var wrote bool
	var mu sync.Mutex
	trace := &httptrace.ClientTrace{WroteRequest: func(info httptrace.WroteRequestInfo) {
		if info.Err == nil {
			mu.Lock()
			wrote = true
			mu.Unlock()
		}
	}}
	req, err := http.NewRequest("POST", url+"/insert", bytes.NewReader(b))
	if err != nil {
		return a, false, err
	}
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	mu.Lock()
	sent = wrote
	mu.Unlock()
	if err != nil {
		return a, sent, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return a, true, fmt.Errorf("status %d, body broke off: %w", resp.StatusCode, err)
	}
	if err := json.Unmarshal(raw, &a); err != nil {
		a.Status = resp.StatusCode
		return a, true, fmt.Errorf("status %d, body %q is not JSON", resp.StatusCode, raw)
	}
	a.Status = resp.StatusCode
	return a, true, nil
}

// tryGetAll is GET /get-all that reports errors instead of failing the test.
func tryGetAll(hc *http.Client, url, query string) ([]logMsg, error) {
	resp, err := hc.Get(url + "/get-all" + query)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("GET %s/get-all%s: status %d: %s", url, query, resp.StatusCode, raw)
	}
	var out []logMsg
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("GET %s/get-all: %v", url, err)
	}
	return out, nil
}

// ---- load: writers that record every attempt ----

// attempt is one POST /insert and what came of it.
type attempt struct {
	writer     int
	msg        string
	target     string
	start, end time.Time
	status     int // 0: transport error
	sent       bool
	id         uint64
	code       string
	errText    string // the answer's "error" sentence
	err        string // the transport error
}

// unknownOutcome: the insert may or may not have been appended.
func (a attempt) unknownOutcome() bool {
	return a.status == 504 || (a.status == 0 && a.sent) || (a.status >= 500 && a.status != 503)
}

type loadOpts struct {
	prefix  string
	writers int
	// targets returns the URLs to send to, round-robin; called per attempt.
	targets func() []string
	// retry: after a non-200, send the same message (with the same key)
	// again until it is acknowledged. Without it every message is sent
	// exactly once.
	retry bool
	// key sends the message as its own idempotency key (in the body).
	key bool
	// timeout bounds one request on the client; timeoutMs is sent.
	timeout   time.Duration
	timeoutMs int
}

// load runs writers until halt and keeps the history of what they saw.
type load struct {
	opts  loadOpts
	hc    *http.Client
	stopc chan struct{}
	wg    sync.WaitGroup

	mu       sync.Mutex
	attempts []attempt
}

func startLoad(opts loadOpts) *load {
	if opts.writers < 1 {
		opts.writers = 1
	}
	if opts.timeout == 0 {
		opts.timeout = 5 * time.Second
	}
	l := &load{
		opts:  opts,
		hc:    &http.Client{Timeout: opts.timeout, Transport: &http.Transport{MaxIdleConnsPerHost: 64}},
		stopc: make(chan struct{}),
	}
	for w := 0; w < opts.writers; w++ {
		l.wg.Add(1)
		go l.run(w)
	}
	return l
}

func (l *load) stopped() bool {
	select {
	case <-l.stopc:
		return true
	default:
		return false
	}
}

func (l *load) run(w int) {
	defer l.wg.Done()
	rr := w
	for seq := 0; !l.stopped(); seq++ {
		msg := fmt.Sprintf("%s-w%d-%d", l.opts.prefix, w, seq)
		body := map[string]any{"message": msg, "writeConcern": "majority"}
		if l.opts.key {
			body["key"] = msg
		}
		if l.opts.timeoutMs > 0 {
			body["timeoutMs"] = l.opts.timeoutMs
		}
		for !l.stopped() {
			targets := l.opts.targets()
			if len(targets) == 0 {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			url := targets[rr%len(targets)]
			rr++
			at := attempt{writer: w, msg: msg, target: url, start: time.Now()}
			a, sent, err := tryPost(l.hc, url, body)
			at.end = time.Now()
			at.status, at.sent, at.id, at.code, at.errText = a.Status, sent, a.ID, a.Code, a.Error
			if err != nil {
				at.err = err.Error()
				if a.Status == 0 {
					at.status = 0
				}
			}
			l.mu.Lock()
			l.attempts = append(l.attempts, at)
			l.mu.Unlock()
			if at.status == 200 || !l.opts.retry {
				break
			}
			// Nothing appended (503, refused) or unknown (504): try again,
			// on the next node, after a short pause.
			select {
			case <-l.stopc:
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
}

// halt stops the writers and waits for them (each request is bounded by
// the client timeout, so this is bounded too).
func (l *load) halt() {
	select {
	case <-l.stopc:
	default:
		close(l.stopc)
	}
	l.wg.Wait()
}

func (l *load) snapshot() []attempt {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.attempts)
}

// ackCount counts acknowledged attempts that started at or after since.
func (l *load) ackCount(since time.Time) int {
	n := 0
	for _, a := range l.snapshot() {
		if a.status == 200 && !a.start.Before(since) {
			n++
		}
	}
	return n
}

// firstAckAfter is the earliest acknowledgement of a request that started
// at or after t0 (zero if none).
func (l *load) firstAckAfter(t0 time.Time) (attempt, bool) {
	var best attempt
	found := false
	for _, a := range l.snapshot() {
		if a.status == 200 && !a.start.Before(t0) && (!found || a.end.Before(best.end)) {
			best, found = a, true
		}
	}
	return best, found
}

// waitAcks waits (bounded) until n acknowledgements of requests started at
// or after since have been seen.
func (l *load) waitAcks(t *testing.T, n int, since time.Time, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, fmt.Sprintf("%d acknowledged writes", n), func() bool { return l.ackCount(since) >= n })
}

// summary counts the attempts by status (0 = transport error).
func (l *load) summary() string {
	counts := map[int]int{}
	for _, a := range l.snapshot() {
		counts[a.status]++
	}
	var keys []int
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	var parts []string
	for _, k := range keys {
		name := fmt.Sprint(k)
		if k == 0 {
			name = "transport-error"
		}
		parts = append(parts, fmt.Sprintf("%s:%d", name, counts[k]))
	}
	return strings.Join(parts, " ")
}

// checkHistory waits (bounded) until the nodes at idx hold identical logs,
// then checks, on every one of them: ids are 1..n with no gap; every
// acknowledged write is at its id with its message; every message is one a
// writer sent; no message appears twice unless its insert had an unknown
// outcome and was retried. It returns the log of the first node.
func checkHistory(t *testing.T, c *cluster, idx []int, attempts []attempt) []logMsg {
	t.Helper()
	acked := map[uint64]string{}
	unknown := map[string]bool{}
	sent := map[string]bool{}
	for _, a := range attempts {
		sent[a.msg] = true
		if a.unknownOutcome() {
			unknown[a.msg] = true
		}
		if a.status != 200 {
			continue
		}
		if prev, ok := acked[a.id]; ok && prev != a.msg {
			t.Errorf("id %d acknowledged for two messages: %q and %q", a.id, prev, a.msg)
		}
		acked[a.id] = a.msg
	}

	// Converge: every node's local view identical.
	logs := make([][]logMsg, len(idx))
	var why string
	deadline := time.Now().Add(15 * time.Second)
	for {
		why = ""
		for k, i := range idx {
			l, err := tryGetAll(quick, c.procs[i].URL(), "")
			if err != nil {
				why = err.Error()
				break
			}
			logs[k] = l
		}
		if why == "" {
			for k := 1; k < len(idx); k++ {
				if !slices.Equal(messagesOf(logs[k]), messagesOf(logs[0])) {
					why = fmt.Sprintf("%s holds %d messages, %s holds %d", c.procs[idx[0]].Name, len(logs[0]), c.procs[idx[k]].Name, len(logs[k]))
					if d := firstDiff(logs[0], logs[k]); d != "" {
						why += "; " + d
					}
					break
				}
			}
		}
		if why == "" || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if why != "" {
		t.Errorf("the nodes' logs did not converge within 15s: %s", why)
	}

	for k, i := range idx {
		name := c.procs[i].Name
		l := logs[k]
		if l == nil && why != "" {
			continue
		}
		for j, m := range l {
			if m.ID != uint64(j+1) {
				t.Errorf("%s: position %d holds id %d: a gap or reordering", name, j+1, m.ID)
				break
			}
		}
		byID := map[uint64]string{}
		count := map[string]int{}
		for _, m := range l {
			byID[m.ID] = m.Message
			count[m.Message]++
			if !sent[m.Message] {
				t.Errorf("%s: id %d holds %q, which no writer sent", name, m.ID, m.Message)
			}
		}
		lost := 0
		for id, msg := range acked {
			if got, ok := byID[id]; !ok || got != msg {
				if lost < 5 {
					t.Errorf("%s: acknowledged write %q (id %d) is lost: id %d holds %q (present %v)", name, msg, id, id, got, ok)
				}
				lost++
			}
		}
		if lost > 0 {
			t.Errorf("%s: %d of %d acknowledged writes lost", name, lost, len(acked))
		}
		for msg, n := range count {
			if n < 2 {
				continue
			}
			if unknown[msg] {
				t.Logf("%s: %q appears %d times; its insert had an unknown outcome and was retried", name, msg, n)
			} else {
				t.Errorf("%s: %q appears %d times, though it was never retried after an unknown outcome", name, msg, n)
			}
		}
	}
	t.Logf("history: %d attempts, %d acknowledged, %d with unknown outcome; logs hold %d messages", len(attempts), len(acked), len(unknown), len(logs[0]))
	return logs[0]
}

func firstDiff(a, b []logMsg) string {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i].ID != b[i].ID || a[i].Message != b[i].Message {
			return fmt.Sprintf("first difference at position %d: %d:%q vs %d:%q", i+1, a[i].ID, a[i].Message, b[i].ID, b[i].Message)
		}
	}
	return ""
}

// postUntilOK sends one majority write to the nodes in urls, round-robin,
// until one answers 200 or the timeout passes; it returns the answer and
// how long it took.
func postUntilOK(urls []string, msg string, timeout time.Duration) (insertAnswer, time.Duration, error) {
	hc := &http.Client{Timeout: 3 * time.Second}
	t0 := time.Now()
	var last string
	for i := 0; time.Since(t0) < timeout; i++ {
		a, _, err := tryPost(hc, urls[i%len(urls)], map[string]any{"message": msg, "writeConcern": "majority", "key": msg, "timeoutMs": 2000})
		if err == nil && a.Status == 200 {
			return a, time.Since(t0), nil
		}
		last = fmt.Sprintf("status %d code %q err %v", a.Status, a.Code, err)
		time.Sleep(20 * time.Millisecond)
	}
	return insertAnswer{}, time.Since(t0), fmt.Errorf("no majority write acknowledged within %v; last answer: %s", timeout, last)
}
