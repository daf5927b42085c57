package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// MaxKeyBytes is the longest idempotency key accepted.
const MaxKeyBytes = 256

// MaxTimeout is the largest timeoutMs accepted (one hour).
const MaxTimeout = time.Hour

// requestError is an invalid request: status, code and a sentence naming
// the field and why.
type requestError struct {
	status int
	code   string
	msg    string
}

func (e *requestError) Error() string { return e.msg }

func badRequest(code, format string, args ...any) *requestError {
	return &requestError{status: http.StatusBadRequest, code: code, msg: fmt.Sprintf(format, args...)}
}

// insertFields are the fields POST /insert accepts.
var insertFields = []string{"message", "writeConcern", "key", "timeoutMs"}

// parsedInsert is a validated POST /insert.
type parsedInsert struct {
	req  InsertRequest
	echo any // writeConcern as the client sent it (a number or a word)
}

// parseInsert validates a POST /insert body. voters is N for writeConcern
// 1..N; headerKey is the Idempotency-Key header ("" when absent).
func parseInsert(body []byte, voters int, headerKey string) (parsedInsert, *requestError) {
	var out parsedInsert
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&fields); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return out, badRequest("bad_json", "the body must be a JSON object like {\"message\": \"...\"}; got a JSON %s", jsonKind(body))
		}
		if errors.Is(err, io.EOF) {
			return out, badRequest("bad_json", "the body is empty; send a JSON object like {\"message\": \"...\"}")
		}
		return out, badRequest("bad_json", "the body is not valid JSON: %v", err)
	}
	if fields == nil {
		return out, badRequest("bad_json", "the body must be a JSON object like {\"message\": \"...\"}; got null")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return out, badRequest("bad_json", "the body must hold exactly one JSON object; found more data after it")
	}
	var unknown []string
	for k := range fields {
		if !isInsertField(k) {
			unknown = append(unknown, strconv.Quote(k))
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return out, badRequest("unknown_field", "unknown field %s; an insert accepts only %s",
			strings.Join(unknown, ", "), strings.Join(insertFields, ", "))
	}

	// message: a non-empty string.
	raw, ok := fields["message"]
	if !ok {
		return out, badRequest("bad_message", "message is missing; send {\"message\": \"...\"}")
	}
	if err := unmarshalString(raw, &out.req.Message); err != nil {
		return out, badRequest("bad_message", "message must be a string; got %s", snippet(raw))
	}
	if out.req.Message == "" {
		return out, badRequest("bad_message", "message must not be empty")
	}

	// writeConcern: 1..N, "majority" or "all"; omitted means "majority".
	if rerr := parseWriteConcern(fields, voters, &out); rerr != nil {
		return out, rerr
	}

	// key, in the body or the Idempotency-Key header.
	if raw, ok := fields["key"]; ok {
		if err := unmarshalString(raw, &out.req.Key); err != nil {
			return out, badRequest("bad_key", "key must be a string of at most %d bytes; got %s", MaxKeyBytes, snippet(raw))
		}
	}
	if len(out.req.Key) > MaxKeyBytes {
		return out, badRequest("bad_key", "key must be at most %d bytes; got %d bytes", MaxKeyBytes, len(out.req.Key))
	}
	if len(headerKey) > MaxKeyBytes {
		return out, badRequest("bad_key", "the Idempotency-Key header must be at most %d bytes; got %d bytes", MaxKeyBytes, len(headerKey))
	}
	switch {
	case headerKey == "":
	case out.req.Key == "":
		out.req.Key = headerKey
	case out.req.Key != headerKey:
		return out, badRequest("bad_key", "key in the body (%q) differs from the Idempotency-Key header (%q); send one or make them equal",
			out.req.Key, headerKey)
	}

	// timeoutMs: a positive integer up to an hour.
	if raw, ok := fields["timeoutMs"]; ok {
		ms, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil || ms < 1 || ms > MaxTimeout.Milliseconds() {
			return out, badRequest("bad_timeout", "timeoutMs must be an integer from 1 to %d (one hour); got %s",
				MaxTimeout.Milliseconds(), snippet(raw))
		}
		out.req.Timeout = time.Duration(ms) * time.Millisecond
	}
	return out, nil
}

func parseWriteConcern(fields map[string]json.RawMessage, voters int, out *parsedInsert) *requestError {
	raw, ok := fields["writeConcern"]
	if !ok {
		out.req.Word = "majority"
		out.echo = "majority"
		return nil
	}
	bad := func() *requestError {
		if voters < 1 {
			return badRequest("bad_write_concern", "writeConcern must be \"majority\" or \"all\" while no voting member is known; got %s", snippet(raw))
		}
		return badRequest("bad_write_concern", "writeConcern must be an integer from 1 to %d, \"majority\" or \"all\"; got %s", voters, snippet(raw))
	}
	if len(raw) > 0 && raw[0] == '"' {
		var word string
		if err := json.Unmarshal(raw, &word); err != nil {
			return bad()
		}
		switch word {
		case "majority", "all":
			out.req.Word = word
			out.echo = word
			return nil
		}
		return bad()
	}
	// A JSON number written as a plain integer: 1.5, 1e0 and 2.0 are refused.
	w, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil || w < 1 || w > int64(voters) {
		return bad()
	}
	out.req.WriteConcern = int(w)
	out.echo = int(w)
	return nil
}

func isInsertField(k string) bool {
	for _, f := range insertFields {
		if k == f {
			return true
		}
	}
	return false
}

// unmarshalString accepts only a JSON string (not null).
func unmarshalString(raw json.RawMessage, dst *string) error {
	if len(raw) == 0 || raw[0] != '"' {
		return errors.New("not a string")
	}
	return json.Unmarshal(raw, dst)
}

// snippet shows a JSON value in an error message, cut short if long.
func snippet(raw json.RawMessage) string {
	const max = 40
	s := string(raw)
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}

// jsonKind names the kind of the JSON value that starts body.
func jsonKind(body []byte) string {
	b := bytes.TrimSpace(body)
	if len(b) == 0 {
		return "nothing"
	}
	switch b[0] {
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	}
	return "number"
}

// insert serves POST /insert.
func (h *handler) insert(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.opts.MaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeError(w, http.StatusRequestEntityTooLarge, "too_large",
				fmt.Sprintf("the body (and so the message) is over the limit of %d bytes", h.opts.MaxBodyBytes))
			return
		}
		h.log.Debug().Err(err).Msg("api: reading an insert body failed")
		writeError(w, http.StatusBadRequest, "bad_body", "the body could not be read: "+err.Error())
		return
	}
	p, rerr := parseInsert(body, h.node.Voters(), r.Header.Get(IdempotencyKeyHeader))
	if rerr != nil {
		writeError(w, rerr.status, rerr.code, rerr.msg)
		return
	}
	if p.req.Timeout == 0 {
		p.req.Timeout = h.opts.DefaultTimeout
	}

	hops, _ := strconv.Atoi(r.Header.Get(ForwardedHeader))
	deadline := time.Now().Add(h.opts.ForwardRetry)
	for {
		res, err := h.node.Insert(r.Context(), p.req)
		if err == nil {
			res.WriteConcern = p.echo
			writeJSON(w, http.StatusOK, res)
			return
		}
		var notLdr *NotLeaderError
		if errors.As(err, &notLdr) && notLdr.LeaderHTTP != "" && hops < MaxForwardHops {
			retry := h.forward(w, r, notLdr, "/insert", body, hops+1, hops == 0 && time.Now().Before(deadline))
			if !retry {
				return
			}
			// Nothing was appended; leadership is probably moving. Ask the
			// node again who the master is; the last attempt before the
			// deadline relays whatever it gets.
			select {
			case <-time.After(20 * time.Millisecond):
			case <-r.Context().Done():
				return
			}
			continue
		}
		switch {
		case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
			if r.Context().Err() != nil {
				h.log.Debug().Err(err).Msg("api: client went away while its insert waited")
				return
			}
			// A context error that is not the client's: the node gave up
			// waiting on its own, so the outcome is unknown.
			writeError(w, http.StatusGatewayTimeout, "timeout",
				"the node stopped waiting for the write concern; the outcome is unknown: "+err.Error())
		default:
			h.writeNodeError(w, r, err)
		}
		return
	}
}
