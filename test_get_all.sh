#!/usr/bin/env bash
# Prints GET /get-all of every node, one line per node, labelled with its URL.
#   NODES          space-separated base URLs
#                  (default: http://localhost:8080 http://localhost:8081 http://localhost:8082)
#   CURL_MAX_TIME  give up on a request after this many seconds (default: never)
NODES=${NODES:-http://localhost:8080 http://localhost:8081 http://localhost:8082}
failed=0
for node in $NODES; do
	# JSON holds no raw newline inside a string, so dropping them keeps one
	# node per line even if the server pretty-prints.
	if body=$(curl -sS --fail-with-body ${CURL_MAX_TIME:+--max-time "$CURL_MAX_TIME"} "$node/get-all" 2>&1); then
		printf '%s: %s\n' "$node" "$(printf '%s' "$body" | tr -d '\n')"
	else
		printf '%s: FAILED: %s\n' "$node" "$(printf '%s' "$body" | tr -d '\n')"
		failed=1
	fi
done
exit "$failed"
