package linearize

import (
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

func app(client int, msg string, call, ret int64, id int) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Input: Input{Op: Append, Msg: msg, Key: msg}, Call: call, Return: ret, Output: Output{ID: id}}
}

func appUnknown(client int, msg string, call int64, id int) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Input: Input{Op: Append, Msg: msg, Key: msg}, Call: call, Return: math.MaxInt64, Output: Output{ID: id, Unknown: true}}
}

func read(client int, call, ret int64, msgs ...string) porcupine.Operation {
	if msgs == nil {
		msgs = []string{}
	}
	return porcupine.Operation{ClientId: client, Input: Input{Op: ReadAll}, Call: call, Return: ret, Output: Output{Msgs: msgs}}
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name    string
		history []porcupine.Operation
		want    porcupine.CheckResult
	}{
		{"empty", nil, porcupine.Ok},
		{"sequential appends and reads", []porcupine.Operation{
			app(0, "a", 0, 10, 1), read(1, 11, 20, "a"), app(0, "b", 21, 30, 2), read(1, 31, 40, "a", "b"),
		}, porcupine.Ok},
		{"concurrent appends in either order", []porcupine.Operation{
			app(0, "a", 0, 100, 2), app(1, "b", 0, 100, 1), read(2, 101, 110, "b", "a"),
		}, porcupine.Ok},
		{"read concurrent with an append may miss it", []porcupine.Operation{
			app(0, "a", 0, 100, 1), read(1, 10, 20),
		}, porcupine.Ok},
		{"read misses an acknowledged append", []porcupine.Operation{
			app(0, "a", 0, 10, 1), read(1, 11, 20),
		}, porcupine.Illegal},
		{"two appends acknowledged with the same id", []porcupine.Operation{
			app(0, "a", 0, 10, 1), app(1, "b", 0, 10, 1),
		}, porcupine.Illegal},
		{"read shows a message before its append was called", []porcupine.Operation{
			read(1, 0, 10, "a"), app(0, "a", 11, 20, 1),
		}, porcupine.Illegal},
		{"acknowledged id leaves a hole", []porcupine.Operation{
			app(0, "a", 0, 10, 2), read(1, 11, 20, "a"),
		}, porcupine.Illegal},
		{"read shows messages out of order", []porcupine.Operation{
			app(0, "a", 0, 10, 1), app(0, "b", 11, 20, 2), read(1, 21, 30, "b", "a"),
		}, porcupine.Illegal},
		{"stale read after a newer read", []porcupine.Operation{
			app(0, "a", 0, 10, 1), read(1, 0, 20, "a"), read(2, 21, 30),
		}, porcupine.Illegal},
		{"unknown append that took effect", []porcupine.Operation{
			appUnknown(0, "a", 0, 1), read(1, 50, 60, "a"),
		}, porcupine.Ok},
		{"unknown append that did not take effect", []porcupine.Operation{
			appUnknown(0, "a", 0, 1), read(1, 50, 60), app(2, "b", 61, 70, 1), read(1, 71, 80, "b"),
		}, porcupine.Ok},
		{"unknown append taking effect late", []porcupine.Operation{
			appUnknown(0, "a", 0, 0), read(1, 50, 60), read(1, 61, 70, "a"),
		}, porcupine.Ok},
		{"unknown append cannot sit at another id", []porcupine.Operation{
			appUnknown(0, "a", 0, 2), read(1, 50, 60, "a"),
		}, porcupine.Illegal},
		{"unknown append cannot be seen and then unseen", []porcupine.Operation{
			appUnknown(0, "a", 0, 1), read(1, 50, 60, "a"), read(1, 61, 70),
		}, porcupine.Illegal},
		{"retry with the same key returns the first id", []porcupine.Operation{
			appUnknown(0, "a", 0, 1),
			app(1, "a", 20, 30, 1), read(2, 31, 40, "a"),
		}, porcupine.Ok},
		{"retry with the same key appends twice", []porcupine.Operation{
			appUnknown(0, "a", 0, 1),
			app(1, "a", 20, 30, 1), read(2, 31, 40, "a", "a"),
		}, porcupine.Illegal},
		{"retry with the same key answered with another id", []porcupine.Operation{
			app(0, "a", 0, 10, 1), app(1, "a", 20, 30, 2),
		}, porcupine.Illegal},
	}
	for i, tt := range tests {
		got, info := Check(tt.history, 10*time.Second)
		if got != tt.want {
			t.Errorf("#%d %s: got %s, want %s", i, tt.name, got, tt.want)
			if got == porcupine.Illegal {
				path := filepath.Join(t.TempDir(), "viz.html")
				if err := Visualize(path, tt.history, info); err != nil {
					t.Error(err)
				}
			}
		}
	}
}

func TestRecorder(t *testing.T) {
	r := NewRecorder()
	c := r.NewClient()
	r.Begin(c, Input{Op: Append, Msg: "a", Key: "a"}).Ok(Output{ID: 1})
	p := r.Begin(c, Input{Op: Append, Msg: "b", Key: "b"})
	c2 := p.Unknown(2)
	if c2 == c {
		t.Errorf("Unknown kept ClientId %d, want a fresh one", c)
	}
	r.Begin(c2, Input{Op: Append, Msg: "c", Key: "c"}).Refused()
	r.Begin(c2, Input{Op: ReadAll}).Ok(Output{Msgs: []string{"a", "b"}})
	h := r.History()
	if len(h) != 3 {
		t.Fatalf("got %d operations, want 3 (the refusal dropped)", len(h))
	}
	if h[1].Return != math.MaxInt64 || !h[1].Output.(Output).Unknown {
		t.Errorf("unknown append recorded as %+v, want Return MaxInt64 and Unknown", h[1])
	}
	if res, _ := Check(h, time.Second); res != porcupine.Ok {
		t.Errorf("got %s, want Ok", res)
	}
}

func TestVisualizeIllegal(t *testing.T) {
	h := []porcupine.Operation{app(0, "a", 0, 10, 1), read(1, 11, 20)}
	res, info := Check(h, time.Second)
	if res != porcupine.Illegal {
		t.Fatalf("got %s, want Illegal", res)
	}
	path := filepath.Join(t.TempDir(), "out", "viz.html")
	if err := Visualize(path, h, info); err != nil {
		t.Fatal(err)
	}
}

func TestDescribeOperation(t *testing.T) {
	tests := []struct {
		in   Input
		out  Output
		want string
	}{
		{Input{Op: Append, Msg: "a"}, Output{ID: 7}, `append("a") -> 7`},
		{Input{Op: Append, Msg: "a"}, Output{Unknown: true}, `append("a") -> ?`},
		{Input{Op: ReadAll}, Output{Msgs: []string{"a", "b"}}, `readAll() -> [a b]`},
	}
	for i, tt := range tests {
		if got := DescribeOperation(tt.in, tt.out); got != tt.want {
			t.Errorf("#%d: got %s, want %s", i, got, tt.want)
		}
	}
}

func TestResolve(t *testing.T) {
	h := []porcupine.Operation{
		appUnknown(0, "a", 0, 1), // in the final log: definite at 1
		appUnknown(1, "b", 0, 2), // lost: dropped
		appUnknown(2, "c", 0, 0), // no id given, in the log at 2
		app(3, "d", 5, 10, 3),    // definite, unchanged
		read(4, 50, 60, "a", "c", "d"),
	}
	r := Resolve(h, []string{"a", "c", "d"})
	if len(r) != 4 {
		t.Fatalf("got %d operations, want 4", len(r))
	}
	if got := r[1].Output.(Output); got.ID != 2 || got.Unknown {
		t.Errorf("got %+v for c, want definite id 2", got)
	}
	if res, _ := Check(r, time.Second); res != porcupine.Ok {
		t.Errorf("resolved: got %s, want Ok", res)
	}
	if res, _ := Check(h, time.Second); res != porcupine.Ok {
		t.Errorf("raw: got %s, want Ok", res)
	}
	// A linearizable read that showed a message the final log lost.
	h = append(h, read(4, 61, 70, "a", "b"))
	if res, _ := Check(Resolve(h, []string{"a", "c", "d"}), time.Second); res != porcupine.Illegal {
		t.Errorf("lost read message: got %s, want Illegal", res)
	}
}
