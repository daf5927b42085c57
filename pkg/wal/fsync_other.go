//go:build !linux

package wal

import "os"

// fdatasync flushes f to stable storage; without fdatasync(2) it is fsync.
func fdatasync(f *os.File) error { return f.Sync() }
