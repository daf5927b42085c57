//go:build chaos

package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"net/http/httptrace"
	"sync"
	"sync/atomic"
	"time"

	"github.com/replog/replog/pkg/linearize"
)

// outcome of a request as the client can tell it.
type outcome int

const (
	definite outcome = iota // 200 (or a read that returned data)
	refused                 // 503 / 4xx / nothing sent: certainly no effect
	unknown                 // 504, other 5xx, or a transport error after sending
)

func (o outcome) String() string {
	return [...]string{"ok", "refused", "unknown"}[o]
}

// writeRec is one POST /insert.
type writeRec struct {
	msg        string
	wc         string // "majority" or "1"
	node       string
	retry      bool // a retry with the same key after an unknown outcome
	start, end time.Time
	status     int
	code       string
	id         uint64
	out        outcome
	err        string
	retryAfter string // the Retry-After header of a 503
}

// readRec is one GET /get-all that answered 200.
type readRec struct {
	concern    string
	node       string
	start, end time.Time
	msgs       []logMsg
}

// workload runs writers and readers against random nodes and records
// every call: porcupine operations in rec, everything in writes/reads.
type workload struct {
	c     *cluster
	rec   *linearize.Recorder
	tag   string
	seed  int64
	wg    sync.WaitGroup
	stopc chan struct{}

	mu        sync.Mutex
	writes    []writeRec
	reads     []readRec
	readFails map[string]int // per concern: 503 and errors
	http500   []string       // answers a client should never see

	ops atomic.Int64
}

const (
	requestTimeout = 2 * time.Second
	insertTimeout  = 1500 // ms, sent in the body
	maxOpsPerCli   = 20000
)

func newWorkload(c *cluster, tag string, seed int64) *workload {
	return &workload{c: c, rec: linearize.NewRecorder(), tag: tag, seed: seed,
		stopc: make(chan struct{}), readFails: map[string]int{}}
}

func (w *workload) stopped() bool {
	select {
	case <-w.stopc:
		return true
	default:
		return false
	}
}

func (w *workload) sleep(d time.Duration) {
	select {
	case <-w.stopc:
	case <-time.After(d):
	}
}

// start launches writers and readers; they run until stop (and at most
// maxOpsPerCli operations each).
func (w *workload) start(writers, readers int) {
	for i := 0; i < writers; i++ {
		w.wg.Add(1)
		go w.writer(i)
	}
	for i := 0; i < readers; i++ {
		w.wg.Add(1)
		go w.reader(i)
	}
}

// stop ends the clients and waits; each request is bounded, so this is too.
func (w *workload) stop() {
	select {
	case <-w.stopc:
	default:
		close(w.stopc)
	}
	w.wg.Wait()
}

func newHTTPClient() *http.Client {
	return &http.Client{Timeout: requestTimeout, Transport: &http.Transport{MaxIdleConnsPerHost: 2, DisableKeepAlives: false}}
}

func (w *workload) writer(k int) {
	defer w.wg.Done()
	rng := rand.New(rand.NewSource(w.seed*1000 + int64(k)))
	hc := newHTTPClient()
	client := w.rec.NewClient()
	for seq := 0; seq < maxOpsPerCli && !w.stopped(); seq++ {
		msg := fmt.Sprintf("%s-w%d-%d", w.tag, k, seq)
		wc := "majority"
		if rng.Intn(100) < 15 {
			wc = "1"
		}
		r := w.insert(hc, rng, &client, msg, wc, false)
		if r.out == unknown && rng.Intn(100) < 40 && !w.stopped() {
			w.insert(hc, rng, &client, msg, wc, true)
		}
		w.sleep(time.Duration(10+rng.Intn(40)) * time.Millisecond)
	}
}

// insert sends one insert to a random node and records it. Majority writes
// go to the porcupine history as they are; w=1 writes go in as appends of
// unknown outcome (acknowledged or not, they may be rolled back), with the
// id they were given.
func (w *workload) insert(hc *http.Client, rng *rand.Rand, client *int, msg, wc string, retry bool) writeRec {
	return w.insertTo(hc, w.c.nodes[rng.Intn(len(w.c.nodes))], client, msg, wc, retry)
}

// insertTo is insert on a given node.
func (w *workload) insertTo(hc *http.Client, nd *node, client *int, msg, wc string, retry bool) writeRec {
	body := map[string]any{"message": msg, "key": msg, "timeoutMs": insertTimeout}
	if wc == "1" {
		body["writeConcern"] = 1
	} else {
		body["writeConcern"] = wc
	}
	p := w.rec.Begin(*client, linearize.Input{Op: linearize.Append, Msg: msg, Key: msg})
	r := writeRec{msg: msg, wc: wc, node: nd.name, retry: retry, start: time.Now()}
	status, ans, sent, err := postInsert(hc, nd.url(), body)
	r.end, r.status, r.code, r.id = time.Now(), status, ans.Code, ans.ID
	r.retryAfter = ans.retryAfter
	if err != nil {
		r.err = err.Error()
	}
	switch {
	case status == 200 && err == nil:
		r.out = definite
	case status == 503 || (status >= 400 && status < 500) || (status == 0 && !sent):
		r.out = refused
	default:
		r.out = unknown
	}
	if status >= 500 && status != 503 && status != 504 {
		w.mu.Lock()
		w.http500 = append(w.http500, fmt.Sprintf("POST %s/insert %q: status %d %s", nd.name, msg, status, r.err))
		w.mu.Unlock()
	}
	switch {
	case r.out == refused:
		p.Refused()
	case r.out == definite && wc == "majority":
		p.Ok(linearize.Output{ID: int(r.id)})
	default:
		*client = p.Unknown(int(r.id))
	}
	w.ops.Add(1)
	w.mu.Lock()
	w.writes = append(w.writes, r)
	w.mu.Unlock()
	return r
}

type insertAnswer struct {
	ID         uint64 `json:"id"`
	Code       string `json:"code"`
	retryAfter string
}

// postInsert is POST /insert; sent tells whether the request was written
// in full (after which a transport error leaves the outcome unknown).
func postInsert(hc *http.Client, url string, body any) (int, insertAnswer, bool, error) {
	var a insertAnswer
	b, _ := json.Marshal(body)
	var wrote atomic.Bool
	trace := &httptrace.ClientTrace{WroteRequest: func(info httptrace.WroteRequestInfo) {
		if info.Err == nil {
			wrote.Store(true)
		}
	}}
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), "POST", url+"/insert", bytes.NewReader(b))
	if err != nil {
		return 0, a, false, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return 0, a, wrote.Load(), err
	}
	defer resp.Body.Close()
	a.retryAfter = resp.Header.Get("Retry-After")
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, a, true, fmt.Errorf("body broke off: %w", err)
	}
	if err := json.Unmarshal(raw, &a); err != nil {
		return resp.StatusCode, a, true, fmt.Errorf("body %q is not JSON", raw)
	}
	return resp.StatusCode, a, true, nil
}

var concerns = []string{"local", "majority", "linearizable"}

func (w *workload) reader(k int) {
	defer w.wg.Done()
	rng := rand.New(rand.NewSource(w.seed*1000 + 500 + int64(k)))
	hc := newHTTPClient()
	client := w.rec.NewClient()
	for seq := 0; seq < maxOpsPerCli && !w.stopped(); seq++ {
		concern := concerns[rng.Intn(len(concerns))]
		w.read(hc, w.c.nodes[rng.Intn(len(w.c.nodes))], concern, client)
		w.sleep(time.Duration(20+rng.Intn(60)) * time.Millisecond)
	}
}

// read does one GET /get-all and records it (a failed read is dropped
// from the porcupine history, and counted).
func (w *workload) read(hc *http.Client, nd *node, concern string, client int) ([]logMsg, error) {
	var p *linearize.Pending
	if concern == "linearizable" {
		p = w.rec.Begin(client, linearize.Input{Op: linearize.ReadAll})
	}
	start := time.Now()
	msgs, status, err := getAll(hc, nd.url(), concern)
	end := time.Now()
	w.ops.Add(1)
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		w.readFails[concern]++
		if status >= 500 && status != 503 {
			w.http500 = append(w.http500, fmt.Sprintf("GET %s/get-all?readConcern=%s: %v", nd.name, concern, err))
		}
		return nil, err
	}
	if p != nil {
		out := make([]string, len(msgs))
		for i, m := range msgs {
			out[i] = m.Message
		}
		p.Ok(linearize.Output{Msgs: out})
	}
	w.reads = append(w.reads, readRec{concern: concern, node: nd.name, start: start, end: end, msgs: msgs})
	return msgs, nil
}
