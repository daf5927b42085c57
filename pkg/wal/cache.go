package wal

import (
	"sort"

	"github.com/replog/replog/pkg/protocol"
)

const (
	// defaultCacheEntries and defaultCacheBytes bound the tail cache.
	defaultCacheEntries = 4096
	defaultCacheBytes   = 8 << 20
)

// tailCache holds the most recently appended entries: the longest suffix of
// the log with at most maxEntries entries whose Sizes sum to at most
// maxBytes. It is a ring buffer; entries first..first+n-1 are cached and,
// when n > 0, first+n-1 is the log's last index. It is not safe for
// concurrent use; the WAL guards it with its RWMutex. The Data of cached
// entries lives in one slab per Append (holding only the entries cached),
// so the cache pins at most about twice maxBytes of Data.
type tailCache struct {
	ring       []protocol.Entry // grows on demand up to maxEntries
	maxEntries int
	head       int    // ring position of entry first
	n          int    // number of cached entries
	first      uint64 // index of the oldest cached entry
	bytes      int    // sum of Size() of cached entries
	maxBytes   int
}

func newTailCache(maxEntries, maxBytes int) *tailCache {
	return &tailCache{maxEntries: maxEntries, maxBytes: maxBytes}
}

// has reports whether entry i is cached.
func (c *tailCache) has(i uint64) bool { return c.n > 0 && i >= c.first && i < c.first+uint64(c.n) }

// get returns cached entry i; has(i) must hold.
func (c *tailCache) get(i uint64) protocol.Entry {
	return c.ring[(c.head+int(i-c.first))%len(c.ring)]
}

// push caches e, which must own its Data, as the new last entry, evicting
// the oldest entries to stay within bounds. If e does not directly follow
// the cached entries the cache restarts at e.
func (c *tailCache) push(e protocol.Entry) {
	if c.maxEntries == 0 {
		return
	}
	if c.n > 0 && e.Index != c.first+uint64(c.n) {
		c.reset()
	}
	if c.n == 0 {
		c.first = e.Index
	}
	if c.n == len(c.ring) {
		if len(c.ring) < c.maxEntries {
			c.grow()
		} else {
			c.evict()
		}
	}
	c.ring[(c.head+c.n)%len(c.ring)] = e
	c.n++
	c.bytes += e.Size()
	for c.bytes > c.maxBytes && c.n > 0 {
		c.evict()
	}
}

// grow enlarges the ring, which is full, keeping the cached entries.
func (c *tailCache) grow() {
	ring := make([]protocol.Entry, min(c.maxEntries, max(64, 2*len(c.ring))))
	for k := range c.n {
		ring[k] = c.ring[(c.head+k)%len(c.ring)]
	}
	c.ring, c.head = ring, 0
}

// evict drops the oldest cached entry.
func (c *tailCache) evict() {
	c.bytes -= c.ring[c.head].Size()
	c.ring[c.head] = protocol.Entry{}
	c.head = (c.head + 1) % len(c.ring)
	c.first++
	c.n--
}

// truncate drops every cached entry with index >= i.
func (c *tailCache) truncate(i uint64) {
	for c.n > 0 && c.first+uint64(c.n)-1 >= i {
		slot := (c.head + c.n - 1) % len(c.ring)
		c.bytes -= c.ring[slot].Size()
		c.ring[slot] = protocol.Entry{}
		c.n--
	}
}

// reset empties the cache.
func (c *tailCache) reset() {
	for c.n > 0 {
		c.evict()
	}
	c.head, c.bytes = 0, 0
}

// termRun says that entries from first on, up to the next run, have term.
type termRun struct {
	first, term uint64
}

// termRuns answers Term from memory: one run per change of term.
type termRuns []termRun

// add records entry (index, term), which must follow the last one added.
func (r *termRuns) add(index, term uint64) {
	if n := len(*r); n == 0 || (*r)[n-1].term != term {
		*r = append(*r, termRun{first: index, term: term})
	}
}

// term returns the term of entry i, which must be in the log.
func (r termRuns) term(i uint64) uint64 {
	k := sort.Search(len(r), func(k int) bool { return r[k].first > i })
	if k == 0 {
		return 0
	}
	return r[k-1].term
}

// truncate forgets entries with index >= i.
func (r *termRuns) truncate(i uint64) {
	k := sort.Search(len(*r), func(k int) bool { return (*r)[k].first >= i })
	*r = (*r)[:k]
}
