#!/usr/bin/env bash
# Posts msg1, msg2, msg3 with writeConcern 3, 2, 3 to the master, one after
# the other, printing each answer with the time it took. With a slow sentinel
# the writeConcern 3 posts wait for it; the writeConcern 2 one does not.
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

post msg1 3
post msg2 2
post msg3 3
exit "$failed"
