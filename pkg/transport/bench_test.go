package transport

import (
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/replog/replog/pkg/protocol"
)

// BenchmarkSendRecv measures one-way throughput of single-entry MsgApp
// messages with 100-byte entries between two transports on loopback. The
// producer keeps at most window messages in flight so none are dropped.
func BenchmarkSendRecv(b *testing.B) {
	var recv atomic.Int64
	rx := New(Config{ID: "rx", Listen: "127.0.0.1:0"}, func(_ Peer, msgs []protocol.Message) {
		recv.Add(int64(len(msgs)))
	})
	tx := New(Config{ID: "tx", Listen: "127.0.0.1:0"}, nil)
	for _, tr := range []*Transport{rx, tx} {
		if err := tr.Start(); err != nil {
			b.Fatal(err)
		}
		defer tr.Stop()
	}
	tx.SetPeer("rx", rx.Addr())
	data := make([]byte, 100)
	const window = DefaultQueueLen / 2

	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		for int64(i)-recv.Load() >= window {
			runtime.Gosched()
		}
		tx.Send(protocol.Message{Type: protocol.MsgApp, From: "tx", To: "rx", Term: 3, Index: uint64(i), Commit: uint64(i),
			Entries: []protocol.Entry{{Index: uint64(i + 1), Term: 3, MsgID: uint64(i + 1), Time: time.Now().UnixNano(), Data: data}}})
	}
	for recv.Load() < int64(b.N) {
		time.Sleep(100 * time.Microsecond)
	}
	el := time.Since(start)
	b.StopTimer()
	if d := tx.Stats()["rx"].Dropped; d != 0 {
		b.Fatalf("%d messages dropped", d)
	}
	b.ReportMetric(float64(b.N)/el.Seconds(), "msgs/s")
}

// BenchmarkPingPong measures the round trip of one message each way (the
// latency of an unbatched Raft request and its response).
func BenchmarkPingPong(b *testing.B) {
	pong := make(chan struct{}, 1)
	var echo *Transport
	echo = New(Config{ID: "echo", Listen: "127.0.0.1:0"}, func(_ Peer, msgs []protocol.Message) {
		for _, m := range msgs {
			echo.Send(protocol.Message{Type: protocol.MsgHeartbeatResp, From: "echo", To: m.From, Term: m.Term})
		}
	})
	ping := New(Config{ID: "ping", Listen: "127.0.0.1:0"}, func(_ Peer, msgs []protocol.Message) {
		for range msgs {
			pong <- struct{}{}
		}
	})
	for _, tr := range []*Transport{echo, ping} {
		if err := tr.Start(); err != nil {
			b.Fatal(err)
		}
		defer tr.Stop()
	}
	ping.SetPeer("echo", echo.Addr())
	hb := protocol.Message{Type: protocol.MsgHeartbeat, From: "ping", To: "echo", Term: 1}
	ping.Send(hb) // warm up: connect both ways
	<-pong
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ping.Send(hb)
		<-pong
	}
}
