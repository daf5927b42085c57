// Command replog-bench is a closed-loop load generator: C concurrent clients
// each insert messages of a fixed size back to back for a duration, and it
// prints throughput and latency percentiles. It talks plain HTTP/1.1 with
// keep-alive through pkg/client, the same way any client would.
//
//	replog-bench -url http://127.0.0.1:8080 -c 64 -d 10s -w majority -size 100
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/replog/replog/pkg/client"
)

type result struct {
	Concurrency  int     `json:"concurrency"`
	WriteConcern string  `json:"writeConcern"`
	Size         int     `json:"size"`
	Seconds      float64 `json:"seconds"`
	OK           int     `json:"ok"`
	Errors       int     `json:"errors"`
	PerSecond    float64 `json:"insertsPerSecond"`
	P50ms        float64 `json:"p50ms"`
	P99ms        float64 `json:"p99ms"`
	Maxms        float64 `json:"maxms"`
}

func main() {
	url := flag.String("url", "http://127.0.0.1:8080", "node to send inserts to")
	conc := flag.Int("c", 64, "concurrent clients")
	dur := flag.Duration("d", 10*time.Second, "duration of the measured run")
	warm := flag.Duration("warmup", time.Second, "unmeasured warm-up")
	wc := flag.String("w", "majority", "writeConcern: 1..N, majority or all")
	size := flag.Int("size", 100, "message size in bytes")
	asJSON := flag.Bool("json", false, "print one JSON line instead of text")
	total := flag.Int64("n", 0, "stop after this many inserts in all (0: run for -d)")
	flag.Parse()

	var concern any = *wc
	if n, err := strconv.Atoi(*wc); err == nil {
		concern = n
	}
	c := client.New(*url)
	msg := strings.Repeat("x", *size)

	// SIGINT or SIGTERM ends the run early; what was measured is printed.
	// (A script's background job starts with SIGINT ignored; Notify undoes
	// that, and SIGTERM works either way.)
	stopped, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var done atomic.Int64
	run := func(d time.Duration, record bool) result {
		ctx, cancel := context.WithTimeout(stopped, d)
		defer cancel()
		lat := make([][]time.Duration, *conc)
		errs := make([]int, *conc)
		var wg sync.WaitGroup
		start := time.Now()
		for i := 0; i < *conc; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					if *total > 0 && done.Add(1) > *total {
						return
					}
					t0 := time.Now()
					_, err := c.Insert(context.Background(), client.InsertOptions{Message: msg, WriteConcern: concern})
					if err != nil {
						errs[i]++
						continue
					}
					if record {
						lat[i] = append(lat[i], time.Since(t0))
					}
				}
			}()
		}
		wg.Wait()
		elapsed := time.Since(start)
		var all []time.Duration
		nerr := 0
		for i := range lat {
			all = append(all, lat[i]...)
			nerr += errs[i]
		}
		slices.Sort(all)
		pct := func(p float64) float64 {
			if len(all) == 0 {
				return 0
			}
			return float64(all[min(len(all)-1, int(p*float64(len(all))))].Microseconds()) / 1000
		}
		return result{
			Concurrency: *conc, WriteConcern: *wc, Size: *size, Seconds: elapsed.Seconds(),
			OK: len(all), Errors: nerr, PerSecond: float64(len(all)) / elapsed.Seconds(),
			P50ms: pct(0.50), P99ms: pct(0.99), Maxms: pct(1),
		}
	}
	if *warm > 0 && *total == 0 {
		run(*warm, false)
	}
	if *total > 0 && *dur == 10*time.Second {
		*dur = 24 * time.Hour // -n bounds the run
	}
	r := run(*dur, true)
	if *asJSON {
		json.NewEncoder(os.Stdout).Encode(r)
	} else {
		fmt.Printf("c=%-3d w=%-8s size=%d  %8.0f inserts/s  p50 %6.2f ms  p99 %6.2f ms  max %7.2f ms  ok %d  errors %d\n",
			r.Concurrency, r.WriteConcern, r.Size, r.PerSecond, r.P50ms, r.P99ms, r.Maxms, r.OK, r.Errors)
	}
	if r.Errors > 0 {
		os.Exit(1)
	}
}
