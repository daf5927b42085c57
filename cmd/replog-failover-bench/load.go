package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"sync"
	"sync/atomic"
	"time"
)

// outcome kinds of one attempt.
const (
	okAck       = iota // 200
	noMaster           // 503: nothing appended
	unknown504         // 504: outcome unknown
	refused            // transport error before the request was sent
	cutOff             // transport error after it was sent (outcome unknown)
	otherStatus        // anything else
	numKinds
)

var kindNames = [numKinds]string{"200", "503", "504", "not sent (refused)", "no answer (cut off)", "other"}

// attempt is one POST /insert, kept compactly for the statistics.
type attempt struct {
	start, end time.Time
	kind       int8
}

// failure describes one non-200 attempt (the first few are kept).
type failure struct {
	at      time.Time
	took    time.Duration
	target  string
	msg     string
	status  int
	code    string
	detail  string
	errText string
}

// writers is the steady load: W goroutines, each inserting unique messages
// (with the message as idempotency key, so a retry never appends twice),
// round-robin over the live nodes, retrying until acknowledged.
type writers struct {
	c         *cluster
	hc        *http.Client
	timeoutMs int64
	stopc     chan struct{}
	wg        sync.WaitGroup

	mu       sync.Mutex
	acked    map[uint64]string // id → message
	conflict []string          // an id acknowledged for two messages
	attempts []attempt
	failures []failure
	nfail    int
	unknown  map[string]bool // messages whose outcome was unknown at some point
	mark     time.Time       // watch for the first ack of a request started after it
	firstAck time.Time
	firstVia string

	sent atomic.Int64
}

func startWriters(c *cluster, n int, timeout time.Duration) *writers {
	w := &writers{
		c: c,
		hc: &http.Client{Timeout: timeout, Transport: &http.Transport{
			MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second,
		}},
		timeoutMs: max(1, (timeout * 4 / 5).Milliseconds()),
		stopc:     make(chan struct{}),
		acked:     map[uint64]string{},
		unknown:   map[string]bool{},
	}
	for i := 0; i < n; i++ {
		w.wg.Add(1)
		go w.run(i)
	}
	return w
}

func (w *writers) stopped() bool {
	select {
	case <-w.stopc:
		return true
	default:
		return false
	}
}

func (w *writers) stop() {
	close(w.stopc)
	w.wg.Wait()
}

type answer struct {
	ID    uint64 `json:"id"`
	Code  string `json:"code"`
	Error string `json:"error"`
}

func (w *writers) run(id int) {
	defer w.wg.Done()
	rr := id
	for seq := 0; !w.stopped(); seq++ {
		msg := fmt.Sprintf("fb-w%d-%d", id, seq)
		body, _ := json.Marshal(map[string]any{"message": msg, "writeConcern": "majority", "key": msg, "timeoutMs": w.timeoutMs})
		for !w.stopped() {
			targets := w.c.targets()
			if len(targets) == 0 {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			url := targets[rr%len(targets)]
			rr++
			if w.post(url, msg, body) {
				break
			}
			select {
			case <-w.stopc:
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
}

// post sends one attempt and records it; true when acknowledged.
func (w *writers) post(url, msg string, body []byte) bool {
	var wrote atomic.Bool
	req, _ := http.NewRequest("POST", url+"/insert", bytes.NewReader(body))
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		WroteRequest: func(i httptrace.WroteRequestInfo) {
			if i.Err == nil {
				wrote.Store(true)
			}
		},
	}))
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	w.sent.Add(1)
	resp, err := w.hc.Do(req)
	var (
		st   int
		a    answer
		kind int8
	)
	if err == nil {
		st = resp.StatusCode
		raw, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		if rerr != nil {
			err = rerr
		} else {
			json.Unmarshal(raw, &a)
		}
	}
	end := time.Now()
	switch {
	case err != nil && wrote.Load():
		kind = cutOff
	case err != nil:
		kind = refused
	case st == 200:
		kind = okAck
	case st == 503:
		kind = noMaster
	case st == 504:
		kind = unknown504
	default:
		kind = otherStatus
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	w.attempts = append(w.attempts, attempt{start: start, end: end, kind: kind})
	if kind == okAck {
		if prev, ok := w.acked[a.ID]; ok && prev != msg {
			w.conflict = append(w.conflict, fmt.Sprintf("id %d acknowledged for %q and %q", a.ID, prev, msg))
		}
		w.acked[a.ID] = msg
		if !w.mark.IsZero() && !start.Before(w.mark) && w.firstAck.IsZero() {
			w.firstAck, w.firstVia = end, url
		}
		return true
	}
	if kind == cutOff || kind == unknown504 || kind == otherStatus {
		w.unknown[msg] = true
	}
	w.nfail++
	if len(w.failures) < 200 {
		f := failure{at: start, took: end.Sub(start), target: url, msg: msg, status: st, code: a.Code, errText: a.Error}
		if err != nil {
			f.detail = err.Error()
		}
		w.failures = append(w.failures, f)
	}
	return false
}

// watch starts looking for the first acknowledgement of a request started
// at or after t0.
func (w *writers) watch(t0 time.Time) {
	w.mu.Lock()
	w.mark, w.firstAck, w.firstVia = t0, time.Time{}, ""
	w.mu.Unlock()
}

// waitFirstAck waits (bounded) for that acknowledgement.
func (w *writers) waitFirstAck(timeout time.Duration) (time.Time, string, bool) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		w.mu.Lock()
		at, via := w.firstAck, w.firstVia
		w.mu.Unlock()
		if !at.IsZero() {
			return at, via, true
		}
		time.Sleep(2 * time.Millisecond)
	}
	return time.Time{}, "", false
}

// ackCount is the number of acknowledged writes so far.
func (w *writers) ackCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked)
}

// waitAcks waits (bounded) until n more writes are acknowledged.
func (w *writers) waitAcks(n int, timeout time.Duration) bool {
	target := w.ackCount() + n
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if w.ackCount() >= target {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return false
}

// window summarises the attempts in flight at any moment of [from, to]:
// the failures among them, the longest request, and the longest stretch
// without any acknowledgement.
func (w *writers) window(from, to time.Time) (failed int, longest, gap time.Duration) {
	w.mu.Lock()
	atts := append([]attempt(nil), w.attempts...)
	w.mu.Unlock()
	var acks []time.Time
	for _, a := range atts {
		if a.end.Before(from) || a.start.After(to) {
			continue
		}
		if a.kind != okAck {
			failed++
		}
		longest = max(longest, a.end.Sub(a.start))
		if a.kind == okAck {
			acks = append(acks, a.end)
		}
	}
	// The longest pause without an acknowledgement within [from, to].
	prev := from
	sortTimes(acks)
	for _, t := range acks {
		if t.After(to) {
			break
		}
		if t.After(prev) {
			gap = max(gap, t.Sub(prev))
			prev = t
		}
	}
	return failed, longest, gap
}
