#!/usr/bin/env bash
# Posts msg4, msg5, msg6 with writeConcern 1 to the master, one after the
# other, printing each answer with the time it took: each answers at once,
# as soon as the master holds the message, however slow the sentinels are.
#   MASTER         base URL of the node to post to (default http://localhost:8080)
#   CURL_MAX_TIME  give up on a request after this many seconds (default: never)
MASTER=${MASTER:-http://localhost:8080}
failed=0

post() { # post MESSAGE WRITE_CONCERN
	local out rc tail
	out=$(curl -s ${CURL_MAX_TIME:+--max-time "$CURL_MAX_TIME"} \
		-H 'Content-Type: application/json' \
		-d "{\"message\":\"$1\",\"writeConcern\":$2}" \
		-w '\n%{http_code} %{time_total}' "$MASTER/insert")
	rc=$?
	tail=${out##*$'\n'} # "CODE SECONDS", written by -w after the body
	out=${out%$'\n'*}
	out=${out%$'\n'}   # the body's own final newline, if any
	[ "$rc" = 0 ] || out="no answer (curl exit code $rc)"
	printf '%s w=%s -> HTTP %s in %ss: %s\n' "$1" "$2" "${tail%% *}" "${tail#* }" "$out"
	[ "${tail%% *}" = 200 ] || failed=1
}

post msg4 1
post msg5 1
post msg6 1
exit "$failed"
