package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/replog/replog/pkg/protocol"
)

const (
	hardStateFile = "hardstate"
	hardStateTmp  = "hardstate.tmp"
	// maxHardState bounds the hardstate file; a node id is short.
	maxHardState = 64 << 10
)

var errBadHardState = errors.New("corrupt hardstate file")

// encodeHardState returns the framed hardstate record for hs.
func encodeHardState(hs protocol.HardState) []byte {
	b := make([]byte, headerSize, headerSize+3*binary.MaxVarintLen64+len(hs.Vote))
	b = binary.AppendUvarint(b, hs.Term)
	b = binary.AppendUvarint(b, uint64(len(hs.Vote)))
	b = append(b, hs.Vote...)
	b = binary.AppendUvarint(b, hs.Commit)
	payload := b[headerSize:]
	binary.LittleEndian.PutUint32(b, uint32(len(payload)))
	binary.LittleEndian.PutUint32(b[4:], crc32.Checksum(payload, crcTable))
	return b
}

// decodeHardState parses a whole hardstate file.
func decodeHardState(b []byte) (protocol.HardState, error) {
	if len(b) < headerSize {
		return protocol.HardState{}, errBadHardState
	}
	n := binary.LittleEndian.Uint32(b)
	payload := b[headerSize:]
	if uint64(n) != uint64(len(payload)) ||
		crc32.Checksum(payload, crcTable) != binary.LittleEndian.Uint32(b[4:]) {
		return protocol.HardState{}, errBadHardState
	}
	d := decoder{p: payload, ok: true}
	var hs protocol.HardState
	hs.Term = d.uvarint()
	vote := d.bytes()
	hs.Commit = d.uvarint()
	if !d.ok || len(d.p) != 0 {
		return protocol.HardState{}, errBadHardState
	}
	hs.Vote = string(vote)
	return hs, nil
}

// loadHardState reads dir's hardstate file, removing a leftover temporary
// file first. A missing file is the empty HardState.
func loadHardState(dir string) (hs protocol.HardState, removedTmp bool, err error) {
	err = os.Remove(filepath.Join(dir, hardStateTmp))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return hs, false, fmt.Errorf("wal: remove stale hardstate: %w", err)
	}
	removedTmp = err == nil
	path := filepath.Join(dir, hardStateFile)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return hs, removedTmp, nil
	}
	if err != nil {
		return hs, removedTmp, fmt.Errorf("wal: open hardstate: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxHardState+1))
	if err != nil {
		return hs, removedTmp, fmt.Errorf("wal: read hardstate: %w", err)
	}
	if len(b) > maxHardState {
		return hs, removedTmp, fmt.Errorf("wal: %s: too large: %w", path, errBadHardState)
	}
	hs, err = decodeHardState(b)
	if err != nil {
		return hs, removedTmp, fmt.Errorf("wal: %s: %w", path, err)
	}
	return hs, removedTmp, nil
}

// writeHardState atomically replaces dir's hardstate file with hs: write a
// temporary file, fsync it, rename it into place, fsync the directory. With
// noSync the fsyncs are skipped (the rename is still atomic).
func writeHardState(dir string, hs protocol.HardState, noSync bool) error {
	tmp := filepath.Join(dir, hardStateTmp)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("wal: save hardstate: %w", err)
	}
	_, err = f.Write(encodeHardState(hs))
	if err == nil && !noSync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, hardStateFile))
	}
	if err == nil && !noSync {
		err = syncDir(dir)
	}
	if err != nil {
		return fmt.Errorf("wal: save hardstate: %w", err)
	}
	return nil
}

// syncDir fsyncs a directory so that file creations, renames and removals
// in it are durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
