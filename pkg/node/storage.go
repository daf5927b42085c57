package node

import (
	"sync"
	"time"

	"github.com/replog/replog/pkg/protocol"
)

// batch is one Ready's persistence work.
type batch struct {
	hs      *protocol.HardState
	entries []protocol.Entry
	// after is sent once hs and entries (and all earlier batches) are durable.
	after []protocol.Message
}

// storeQueue is an unbounded FIFO from the loop to the storage goroutine:
// the loop must never block on storage, and batches that pile up while an
// fsync runs are written together and share the next one (group commit).
type storeQueue struct {
	mu     sync.Mutex
	cond   *sync.Cond
	q      []*batch
	closed bool
}

func newStoreQueue() *storeQueue {
	s := &storeQueue{}
	s.cond = sync.NewCond(&s.mu)
	return s
}

func (s *storeQueue) push(b *batch) {
	s.mu.Lock()
	s.q = append(s.q, b)
	s.mu.Unlock()
	s.cond.Signal()
}

// popAll blocks until there is work, and takes all of it. It returns nil
// once the queue is closed.
func (s *storeQueue) popAll() []*batch {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.q) == 0 && !s.closed {
		s.cond.Wait()
	}
	if s.closed {
		return nil
	}
	q := s.q
	s.q = nil
	return q
}

func (s *storeQueue) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cond.Broadcast()
}

// runStorage appends, fsyncs once for everything queued, then releases the
// messages that waited for durability and reports back to the loop.
func (n *Node) runStorage() {
	var delayed *delayLine
	if n.cfg.ReplicationDelay > 0 {
		delayed = newDelayLine(n.cfg.ReplicationDelay, n.tr.Send)
		defer delayed.stop()
	}
	for {
		bs := n.store.popAll()
		if bs == nil {
			return
		}
		var hs *protocol.HardState
		var last protocol.Entry
		wrote := false
		for _, b := range bs {
			if len(b.entries) > 0 {
				first := b.entries[0].Index
				if first <= n.wal.LastIndex() {
					// A follower replacing a conflicting suffix: readers
					// must not mix the old suffix with the new one.
					n.reportTruncation(first)
					n.truncGen.Add(1)
					if n.stable.Load() >= first {
						n.stable.Store(first - 1)
					}
				}
				if err := n.wal.Append(b.entries); err != nil {
					n.fatal(err, "append to log")
					return
				}
				last = b.entries[len(b.entries)-1]
				wrote = true
			}
			if b.hs != nil {
				hs = b.hs
			}
		}
		start := time.Now()
		if wrote {
			if err := n.wal.Sync(); err != nil {
				n.fatal(err, "fsync log")
				return
			}
		}
		if hs != nil {
			if err := n.wal.SaveHardState(*hs); err != nil {
				n.fatal(err, "save term and vote")
				return
			}
		}
		if wrote {
			n.metrics.fsyncs.Inc()
			n.metrics.fsyncSeconds.Observe(time.Since(start).Seconds())
			n.stable.Store(last.Index)
		}
		for _, b := range bs {
			if len(b.after) == 0 {
				continue
			}
			if delayed != nil {
				delayed.send(b.after)
			} else {
				n.tr.Send(b.after...)
			}
		}
		if wrote {
			select {
			case n.persistc <- persisted{last.Index, last.Term}:
			case <-n.stopc:
				return
			}
		}
	}
}

// reportTruncation logs and counts the messages a conflicting suffix held:
// writes a former master acknowledged below a majority and that the new
// master lacks. Such a loss is allowed for w < majority, but never silent.
func (n *Node) reportTruncation(first uint64) {
	last := n.wal.LastIndex()
	var ids []uint64
	for i := first; i <= last; {
		ents, err := n.wal.Entries(i, last+1, 4<<20)
		if err != nil {
			n.log.Error().Err(err).Uint64("from", first).Msg("cannot read the suffix being replaced")
			return
		}
		for _, e := range ents {
			if e.Type == protocol.EntryNormal {
				ids = append(ids, e.MsgID)
			}
		}
		i += uint64(len(ents))
	}
	n.metrics.truncatedEntries.Add(float64(last - first + 1))
	if len(ids) == 0 {
		n.log.Info().Uint64("from_index", first).Uint64("to_index", last).Msg("replaced internal entries the new master lacks")
		return
	}
	n.metrics.droppedMessages.Add(float64(len(ids)))
	ev := n.log.Warn().Int("count", len(ids)).Uint64("from_index", first).Uint64("to_index", last)
	if len(ids) <= 100 {
		ev = ev.Uints64("message_ids", ids)
	} else {
		ev = ev.Uints64("first_message_ids", ids[:100])
	}
	ev.Msg("dropping messages the new master lacks (acknowledged below a majority at most, so allowed to be lost)")
}

// fatal handles a storage error: a node that cannot persist must not
// acknowledge anything more, so it stops serving.
func (n *Node) fatal(err error, what string) {
	n.log.Error().Err(err).Msg("storage failed (" + what + "); stopping this node so it acknowledges nothing it did not persist")
	go n.Stop()
}

// delayLine implements REPLICATION_DELAY: acknowledgements of new entries
// leave this long after they were ready, in order; everything else
// (heartbeat answers, votes, rejections) goes at once, so a slowed sentinel
// is slow, not dead.
type delayLine struct {
	delay  time.Duration
	sendFn func(...protocol.Message)
	mu     sync.Mutex
	q      []delayed
	wake   chan struct{}
	quit   chan struct{}
	done   chan struct{}
	// released is the highest index acknowledged so far; queued the
	// highest waiting in q.
	released, queued uint64
}

type delayed struct {
	due time.Time
	m   protocol.Message
}

func newDelayLine(d time.Duration, send func(...protocol.Message)) *delayLine {
	l := &delayLine{delay: d, sendFn: send, wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	go l.run()
	return l
}

func (l *delayLine) send(msgs []protocol.Message) {
	now := time.Now()
	var direct []protocol.Message
	l.mu.Lock()
	for _, m := range msgs {
		if m.Type == protocol.MsgAppResp && !m.Reject && m.Index > l.released {
			// An acknowledgement of entries not yet acknowledged: it waits.
			// A repeat of one already waiting is dropped, or it would
			// overtake the delayed one.
			if m.Index > l.queued {
				l.queued = m.Index
				l.q = append(l.q, delayed{now.Add(l.delay), m})
			}
			continue
		}
		direct = append(direct, m)
	}
	l.mu.Unlock()
	if len(direct) > 0 {
		l.sendFn(direct...)
	}
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func (l *delayLine) run() {
	defer close(l.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		l.mu.Lock()
		var due []protocol.Message
		now := time.Now()
		for len(l.q) > 0 && !l.q[0].due.After(now) {
			due = append(due, l.q[0].m)
			l.released = max(l.released, l.q[0].m.Index)
			l.q = l.q[1:]
		}
		next := time.Hour
		if len(l.q) > 0 {
			next = l.q[0].due.Sub(now)
		}
		l.mu.Unlock()
		if len(due) > 0 {
			l.sendFn(due...)
		}
		timer.Reset(next)
		select {
		case <-timer.C:
		case <-l.wake:
		case <-l.quit:
			return
		}
	}
}

func (l *delayLine) stop() {
	close(l.quit)
	<-l.done
}
