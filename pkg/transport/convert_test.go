package transport

import (
	"net"
	"reflect"
	"strconv"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/replog/replog/pkg/protocol"
	replpb "github.com/replog/replog/proto"
)

// fillDistinct sets every field reachable from v (structs, slices of structs)
// to a distinct non-zero value, so a converter that forgets a field fails the
// round trip.
func fillDistinct(t *testing.T, v reflect.Value, next *uint64) {
	t.Helper()
	*next++
	n := *next
	switch v.Kind() {
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			fillDistinct(t, v.Field(i), next)
		}
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uint:
		v.SetUint(n % 200) // fits uint8 enums; still distinct in practice
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Int:
		v.SetInt(-int64(n) * 1_000_000_007)
	case reflect.String:
		v.SetString("s" + strconv.FormatUint(n, 10))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			v.SetBytes([]byte{byte(n), byte(n >> 8), 0, 0xff})
			return
		}
		s := reflect.MakeSlice(v.Type(), 3, 3)
		for i := 0; i < s.Len(); i++ {
			fillDistinct(t, s.Index(i), next)
		}
		v.Set(s)
	default:
		t.Fatalf("fillDistinct: unhandled kind %s; extend the test and convert.go", v.Kind())
	}
}

// assertNoZeroField fails if any field of v is zero, catching a filler that
// skipped something.
func assertNoZeroField(t *testing.T, v reflect.Value, path string) {
	t.Helper()
	if v.IsZero() {
		t.Fatalf("%s is zero", path)
	}
	switch v.Kind() {
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			assertNoZeroField(t, v.Field(i), path+"."+v.Type().Field(i).Name)
		}
	case reflect.Slice:
		if v.Type().Elem().Kind() != reflect.Uint8 {
			for i := 0; i < v.Len(); i++ {
				assertNoZeroField(t, v.Index(i), path+"[]")
			}
		}
	}
}

// roundTrip converts m to protobuf, marshals, unmarshals and converts back.
func roundTrip(t *testing.T, m protocol.Message) protocol.Message {
	t.Helper()
	b, err := proto.Marshal(&replpb.Envelope{Msgs: []*replpb.Message{toPB(&m)}})
	if err != nil {
		t.Fatal(err)
	}
	var env replpb.Envelope
	if err := proto.Unmarshal(b, &env); err != nil {
		t.Fatal(err)
	}
	out := fromPB(env.Msgs)
	if len(out) != 1 {
		t.Fatalf("got %d messages", len(out))
	}
	return out[0]
}

func TestConvertAllFields(t *testing.T) {
	var next uint64
	var m protocol.Message
	fillDistinct(t, reflect.ValueOf(&m).Elem(), &next)
	assertNoZeroField(t, reflect.ValueOf(m), "Message")
	got := roundTrip(t, m)
	if !reflect.DeepEqual(got, m) {
		t.Fatalf("round trip lost data:\n got %+v\nwant %+v", got, m)
	}
}

func TestConvertEveryType(t *testing.T) {
	for typ := protocol.MsgApp; typ <= protocol.MsgTimeoutNow; typ++ {
		if _, ok := replpb.MessageType_name[int32(typ)]; !ok {
			t.Errorf("%s has no replpb.MessageType value", typ)
		}
		m := protocol.Message{Type: typ, From: "a", To: "b", Term: uint64(typ) * 10}
		if got := roundTrip(t, m); !reflect.DeepEqual(got, m) {
			t.Errorf("%s: got %+v want %+v", typ, got, m)
		}
	}
	for et := protocol.EntryNormal; et <= protocol.EntryConfig; et++ {
		if _, ok := replpb.EntryType_name[int32(et)]; !ok {
			t.Errorf("%s has no replpb.EntryType value", et)
		}
		m := protocol.Message{Type: protocol.MsgApp, Entries: []protocol.Entry{{Index: 1, Type: et, Data: []byte("x")}}}
		if got := roundTrip(t, m); !reflect.DeepEqual(got, m) {
			t.Errorf("%s: got %+v want %+v", et, got, m)
		}
	}
}

func TestConvertEmpty(t *testing.T) {
	cases := []struct {
		name string
		in   protocol.Message
		want protocol.Message
	}{
		{"zero", protocol.Message{}, protocol.Message{}},
		{"nil entries", protocol.Message{Type: protocol.MsgApp, Entries: nil}, protocol.Message{Type: protocol.MsgApp}},
		{"empty entries", protocol.Message{Type: protocol.MsgApp, Entries: []protocol.Entry{}}, protocol.Message{Type: protocol.MsgApp}},
		{"nil data", protocol.Message{Entries: []protocol.Entry{{Index: 3, Type: protocol.EntryNoop}}},
			protocol.Message{Entries: []protocol.Entry{{Index: 3, Type: protocol.EntryNoop}}}},
		{"empty data", protocol.Message{Entries: []protocol.Entry{{Index: 3, Data: []byte{}}}},
			protocol.Message{Entries: []protocol.Entry{{Index: 3}}}},
		{"zero entry", protocol.Message{Entries: []protocol.Entry{{}, {Index: 1}}},
			protocol.Message{Entries: []protocol.Entry{{}, {Index: 1}}}},
		{"max values", protocol.Message{Term: ^uint64(0), Index: ^uint64(0), Context: ^uint64(0),
			Entries: []protocol.Entry{{Time: -1, MsgID: ^uint64(0)}}},
			protocol.Message{Term: ^uint64(0), Index: ^uint64(0), Context: ^uint64(0),
				Entries: []protocol.Entry{{Time: -1, MsgID: ^uint64(0)}}}},
	}
	for _, c := range cases {
		if got := roundTrip(t, c.in); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %#v want %#v", c.name, got, c.want)
		}
	}
}

// TestConvertReuse checks that a reused protobuf message carries no state
// from the batch before.
func TestConvertReuse(t *testing.T) {
	b := &batcher{env: new(replpb.Envelope)}
	big := protocol.Message{To: "x", Entries: []protocol.Entry{{Index: 1, Key: "k", Data: []byte("a")}, {Index: 2}}}
	small := protocol.Message{To: "y", Commit: 5}
	q := make(chan protocol.Message, 1)
	b.fill(big, q)
	b.reset()
	q <- small
	b.fill(small, q) // small twice: first and from the queue
	got := fromPB(b.env.Msgs)
	want := []protocol.Message{small, small}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v want %+v", got, want)
	}
	b.reset()
	if len(b.env.Msgs) != 0 || b.pool[0].Entries != nil && len(b.pool[0].Entries) != 0 {
		t.Fatal("reset left messages behind")
	}
}

func TestConvertBatchSharesEntries(t *testing.T) {
	in := []protocol.Message{
		{Entries: []protocol.Entry{{Index: 1}, {Index: 2}}},
		{},
		{Entries: []protocol.Entry{{Index: 3}}},
	}
	pms := make([]*replpb.Message, len(in))
	for i := range in {
		pms[i] = toPB(&in[i])
	}
	out := fromPB(pms)
	// Appending to one message's entries must not overwrite the next one's.
	out[0].Entries = append(out[0].Entries, protocol.Entry{Index: 99})
	if out[2].Entries[0].Index != 3 {
		t.Fatal("entries of different messages alias")
	}
	if out[1].Entries != nil {
		t.Fatal("empty message got non-nil entries")
	}
}

func TestFillHost(t *testing.T) {
	remote := &net.TCPAddr{IP: net.ParseIP("10.0.0.7"), Port: 5555}
	for in, want := range map[string]string{
		":9090":         "10.0.0.7:9090",
		"0.0.0.0:9090":  "10.0.0.7:9090",
		"[::]:9090":     "10.0.0.7:9090",
		"node1:9090":    "node1:9090",
		"10.0.0.9:9090": "10.0.0.9:9090",
		"":              "",
		"garbage":       "garbage",
	} {
		if got := fillHost(in, remote); got != want {
			t.Errorf("fillHost(%q) = %q, want %q", in, got, want)
		}
	}
}
