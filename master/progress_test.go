package master

import "testing"

func TestInflightsBoundedByCount(t *testing.T) {
	in := NewInflights(3, 0)
	for i := uint64(1); i <= 3; i++ {
		if in.Full() {
			t.Fatalf("full after %d of 3 appends", i-1)
		}
		in.Add(i*10, 1<<30) // bytes do not matter without a byte bound
	}
	if !in.Full() {
		t.Fatal("not full with 3 of 3 appends in flight")
	}
	in.FreeLE(20)
	if in.Count() != 1 || in.Full() {
		t.Fatalf("after FreeLE(20): count %d full %v, want 1 false", in.Count(), in.Full())
	}
}

func TestInflightsBoundedByBytes(t *testing.T) {
	in := NewInflights(256, 100)
	in.Add(1, 40)
	in.Add(2, 40)
	if in.Full() {
		t.Fatal("full at 80 of 100 bytes")
	}
	in.Add(3, 40) // the append that crosses the bound still goes out
	if !in.Full() || in.Bytes() != 120 {
		t.Fatalf("full %v bytes %d, want true 120", in.Full(), in.Bytes())
	}
	in.FreeLE(1)
	if in.Full() || in.Bytes() != 80 {
		t.Fatalf("after freeing the first: full %v bytes %d, want false 80", in.Full(), in.Bytes())
	}
	in.FreeFirst()
	in.FreeFirst()
	in.FreeFirst() // on an empty window: nothing happens
	if in.Count() != 0 || in.Bytes() != 0 {
		t.Fatalf("emptied: count %d bytes %d", in.Count(), in.Bytes())
	}
	in.Add(4, 10)
	in.Reset()
	if in.Count() != 0 || in.Bytes() != 0 || in.Full() {
		t.Fatalf("after Reset: count %d bytes %d full %v", in.Count(), in.Bytes(), in.Full())
	}
}

// A follower far behind gets at most the byte window in flight: the master
// stops sending once it is reached, and each acknowledgement lets more go.
func TestProgressPausesAtByteWindow(t *testing.T) {
	p := NewProgress(1, 256, 3<<20, 0)
	p.BecomeReplicate()
	sent := 0
	for !p.IsPaused() {
		sent++
		p.SentEntries(uint64(sent*1000), 1000, 1<<20)
	}
	if sent != 3 {
		t.Fatalf("sent %d appends of 1 MiB before pausing, want 3", sent)
	}
	p.MaybeUpdate(1000)
	p.Inflight.FreeLE(1000)
	if p.IsPaused() {
		t.Fatal("still paused after the first append was acknowledged")
	}
}
