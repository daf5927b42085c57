package transport

import (
	"github.com/replog/replog/pkg/protocol"
	replpb "github.com/replog/replog/proto"
)

// This file is the only place that knows both protocol and replpb types. The
// enum numbers of the .proto equal the Go constants, so types convert by
// value; unknown values survive a round trip.

// fillPBEntry overwrites dst with e. dst may be reused from an earlier batch.
func fillPBEntry(dst *replpb.Entry, e *protocol.Entry) {
	dst.Index = e.Index
	dst.Term = e.Term
	dst.Type = replpb.EntryType(e.Type)
	dst.MsgId = e.MsgID
	dst.Time = e.Time
	dst.Key = e.Key
	dst.Data = e.Data
}

// fillPBMessage overwrites dst with m, reusing dst.Entries' backing array and
// the Entry structs it points to. Data is shared, not copied.
func fillPBMessage(dst *replpb.Message, m *protocol.Message) {
	dst.Type = replpb.MessageType(m.Type)
	dst.From = m.From
	dst.To = m.To
	dst.Term = m.Term
	dst.LogTerm = m.LogTerm
	dst.Index = m.Index
	dst.Commit = m.Commit
	dst.Reject = m.Reject
	dst.RejectHint = m.RejectHint
	dst.Context = m.Context
	ents := dst.Entries[:0]
	for i := range m.Entries {
		var pe *replpb.Entry
		if i < cap(ents) {
			pe = ents[:i+1][i]
		}
		if pe == nil {
			pe = new(replpb.Entry)
		}
		fillPBEntry(pe, &m.Entries[i])
		ents = append(ents, pe)
	}
	dst.Entries = ents
}

// releasePBMessage drops dst's references to caller memory (entry data and
// keys) so a reused message does not pin it, keeping allocations for reuse.
func releasePBMessage(dst *replpb.Message) {
	for _, pe := range dst.Entries {
		pe.Data = nil
		pe.Key = ""
	}
	dst.Entries = dst.Entries[:0]
}

// toPB converts m into a freshly allocated replpb.Message.
func toPB(m *protocol.Message) *replpb.Message {
	pm := new(replpb.Message)
	fillPBMessage(pm, m)
	return pm
}

// fromPBEntry converts one entry. Data is shared with pe; an empty Data
// becomes nil.
func fromPBEntry(pe *replpb.Entry) protocol.Entry {
	e := protocol.Entry{
		Index: pe.GetIndex(),
		Term:  pe.GetTerm(),
		Type:  protocol.EntryType(pe.GetType()),
		MsgID: pe.GetMsgId(),
		Time:  pe.GetTime(),
		Key:   pe.GetKey(),
	}
	if d := pe.GetData(); len(d) > 0 {
		e.Data = d
	}
	return e
}

// fromPBMessage converts pm; its entries are written into ents, which must
// have room for len(pm.Entries) more elements (so a whole batch can share one
// allocation). No entries give a nil Entries slice.
func fromPBMessage(pm *replpb.Message, ents []protocol.Entry) protocol.Message {
	m := protocol.Message{
		Type:       protocol.MessageType(pm.GetType()),
		From:       pm.GetFrom(),
		To:         pm.GetTo(),
		Term:       pm.GetTerm(),
		LogTerm:    pm.GetLogTerm(),
		Index:      pm.GetIndex(),
		Commit:     pm.GetCommit(),
		Reject:     pm.GetReject(),
		RejectHint: pm.GetRejectHint(),
		Context:    pm.GetContext(),
	}
	if n := len(pm.GetEntries()); n > 0 {
		ents = ents[:n:n]
		for i, pe := range pm.Entries {
			ents[i] = fromPBEntry(pe)
		}
		m.Entries = ents
	}
	return m
}

// fromPB converts a batch of messages, allocating all entries at once.
func fromPB(pms []*replpb.Message) []protocol.Message {
	if len(pms) == 0 {
		return nil
	}
	total := 0
	for _, pm := range pms {
		total += len(pm.GetEntries())
	}
	var ents []protocol.Entry
	if total > 0 {
		ents = make([]protocol.Entry, total)
	}
	out := make([]protocol.Message, len(pms))
	for i, pm := range pms {
		n := len(pm.GetEntries())
		out[i] = fromPBMessage(pm, ents)
		ents = ents[n:]
	}
	return out
}
