package client

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Error is a non-2xx answer from a node.
type Error struct {
	Status  int    // HTTP status
	Code    string // the body's machine word, e.g. "no_master", "bad_write_concern"
	Message string // the body's human sentence
	// ID (and Term, Acks) are set on a 504 whose message is in the log.
	ID   uint64
	Term uint64
	Acks int
	// RetryAfter is the Retry-After header (503), 0 when absent.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	if e.ID != 0 {
		return fmt.Sprintf("client: %d %s (id %d): %s", e.Status, e.Code, e.ID, e.Message)
	}
	return fmt.Sprintf("client: %d %s: %s", e.Status, e.Code, e.Message)
}

// TransportError is a request that got no complete answer.
type TransportError struct {
	Op  string // "insert", "get-all", ...
	URL string
	// Sent is true when the whole request was written: the server may have
	// acted on it.
	Sent bool
	Err  error
}

func (e *TransportError) Error() string {
	state := "not sent"
	if e.Sent {
		state = "sent, no complete answer"
	}
	return fmt.Sprintf("client: %s %s (%s): %v", e.Op, e.URL, state, e.Err)
}

func (e *TransportError) Unwrap() error { return e.Err }

// IsUnknownOutcome reports whether an insert may or may not have been
// appended: a 504 (which carries the id when the master knows it), another
// 5xx except 503 (a server failure), or a transport error after the request
// was sent.
func IsUnknownOutcome(err error) bool {
	var e *Error
	if errors.As(err, &e) {
		return e.Status >= 500 && e.Status != http.StatusServiceUnavailable
	}
	var te *TransportError
	if errors.As(err, &te) {
		return te.Sent
	}
	return false
}

// IsRefused reports whether the request was certainly not acted on: a 4xx,
// a 503 (no master, no quorum), or a transport error before anything was
// sent.
func IsRefused(err error) bool {
	var e *Error
	if errors.As(err, &e) {
		return (e.Status >= 400 && e.Status < 500) || e.Status == http.StatusServiceUnavailable
	}
	var te *TransportError
	if errors.As(err, &te) {
		return !te.Sent
	}
	return false
}

// Code returns the error code of an *Error in err's chain, or "".
func Code(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}
