// Package wal is the durable log of one replog node: the Raft log entries it
// holds and its persisted HardState.
//
// # Usage
//
// Open a directory, Append entries, Sync before acting on them (answering a
// MsgApp, counting a vote), and read them back with Entries and Term. One
// writer goroutine calls Append, Sync, SaveHardState and Close; any number of
// reader goroutines may call Entries, Term, FirstIndex, LastIndex and
// HardState at the same time.
//
// # Directory layout
//
//	<dir>/00000000000000000001.wal   segment holding entries 1..k
//	<dir>/0000000000000000000k+1.wal next segment, and so on
//	<dir>/hardstate                  the last saved HardState
//	<dir>/hardstate.tmp              transient, only while SaveHardState runs
//
// A segment file is named by the index of its first entry, printed as 20
// decimal digits ("%020d.wal"), so lexical and numeric order agree. The first
// segment is always named 1 (the log is never compacted) and each later
// segment is named one past the last index of the one before it. The writer
// rolls to a new segment before appending a record once the active segment
// has reached Options.SegmentBytes, so a segment exceeds that size by at most
// one record.
//
// # Records
//
// A segment is a plain concatenation of records, one per entry, with no file
// header:
//
//	offset 0  u32 little-endian  payload length n (1 <= n <= 64 MiB)
//	offset 4  u32 little-endian  CRC-32 (Castagnoli) of the payload
//	offset 8  n bytes            payload
//
// The payload encodes one protocol.Entry:
//
//	uvarint  Index
//	uvarint  Term
//	byte     Type
//	uvarint  MsgID
//	varint   Time (zig-zag, Unix nanoseconds)
//	uvarint  len(Key), then Key bytes
//	uvarint  len(Data), then Data bytes
//
// and must be consumed exactly: trailing bytes make the record undecodable.
// An empty Data decodes as nil.
//
// # HardState file
//
// "hardstate" holds one record framed the same way (u32 length, u32 CRC-32C,
// payload) whose payload is uvarint Term, uvarint len(Vote), Vote bytes,
// uvarint Commit. SaveHardState writes "hardstate.tmp", fsyncs it, renames it
// over "hardstate" and fsyncs the directory, so a crash leaves either the old
// or the new state. A leftover "hardstate.tmp" is deleted by Open; a
// "hardstate" that fails its checks makes Open fail. A missing file is the
// empty HardState.
//
// # Durability
//
// Append issues one pwrite per segment it touches and does not fsync. Sync
// fdatasyncs the active segment and, when segment files were created or
// removed since the previous Sync, fsyncs the directory. Two rare events
// sync eagerly, because a crash in the middle of them could otherwise leave
// a log that is not a prefix of anything written: rolling to a new segment
// fdatasyncs the segment being left, and truncating a conflicting suffix
// fsyncs the directory between segment removals and fdatasyncs the cut
// segment before new records are written over the old ones. Options.NoSync
// turns every fsync off.
//
// # Recovery
//
// Open scans every segment in order, checking each record's length, CRC,
// decoding and that indexes run 1, 2, 3, ... across records and segments.
// In the last non-empty segment the first bad record (short header, length
// past the end of the file, CRC mismatch, undecodable payload, unexpected
// index) and everything after it is a torn write: Open truncates the file
// there, fsyncs it and logs a warning with the number of bytes cut and the
// last good index. A bad record in any earlier segment, or segment names that
// do not line up, is corruption Open cannot repair: it returns an error
// wrapping ErrCorrupt rather than drop entries that later segments depend
// on. Empty trailing segment files (a roll cut short by a crash) are removed.
//
// # Memory
//
// The WAL does not hold the log in memory. It keeps the term runs (one
// (index, term) pair per change of term, enough for Term), a sparse offset
// index per segment (the file offset of every 64th record, from which
// Entries scans forward), and a bounded cache of the most recently appended
// entries (at most 4096 entries and 8 MiB), which serves the master's
// re-reads of fresh entries without touching the disk.
package wal
