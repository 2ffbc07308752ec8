#!/usr/bin/env bash
# bench.sh: what `make bench` does: measure Tandem on this machine against
# the local PostgreSQL (loopback only, each step bounded) and write the
# figures into the generated block of docs/benchmarks.md. 10 to 13 minutes
# on the 2-core machine; the hand-written sections of docs/benchmarks.md
# say what each figure means and how it was reached.
#
#   BENCH_ONLY="load search"   run only some groups: load (tandem loadgen:
#                              start-up, idle sockets, message path, burst,
#                              bot turns), api, search (100,000-chunk search
#                              and the bot's local turn over it), packages,
#                              handoff
#   TANDEM_BENCH_SEARCH_CHUNKS 100,000 by default; `make bench-1m` sets 1,000,000
#   TANDEM_BENCH_SEARCH_HNSW   the HNSW builds to measure, m:ef_construction,
#                              the last one kept for the bot's turn
#                              (32:128,16:64 at 100,000; 16:64 above)
#   BENCH_BLOCK                which generated block of docs/benchmarks.md to
#                              write ("make bench" by default)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
. scripts/lib.sh
need_go
if [ -z "${TANDEM_TEST_DATABASE_URL:-}" ]; then
  if [ -n "${DATABASE_URL:-}" ]; then export TANDEM_TEST_DATABASE_URL=$DATABASE_URL
  else TANDEM_TEST_DATABASE_URL=$(local_db); export TANDEM_TEST_DATABASE_URL; fi
fi
only=${BENCH_ONLY:-load api search packages handoff}
want() { [[ " $only " == *" $1 "* ]]; }
out=$(mktemp)
kb=""
cleanup() {
  rm -f "$out"
  if [ -n "$kb" ]; then psql "$TANDEM_TEST_DATABASE_URL" -qc "DROP DATABASE IF EXISTS $kb WITH (FORCE)" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT
step() { echo "== $(date -u +%H:%M:%S) $* (load average $(cut -d' ' -f1 /proc/loadavg))" >&2; }
start=$(date +%s)
load_start=$(cut -d' ' -f1 /proc/loadavg)

go build -o bin/tandem ./cmd/tandem
go build -o bin/wspeer ./scripts/wspeer

if want load; then
  # Centrifugo, the peer the issue names for connections, built from Go
  # modules at a fixed version (scripts/centrifugo/go.mod, a module of its
  # own so that its dependencies stay out of Tandem's); about a minute the
  # first time, cached after.
  (cd scripts/centrifugo && go build -o ../../bin/centrifugo github.com/centrifugal/centrifugo/v5)
  # tandem loadgen runs bin/tandem as the server (two instances where it
  # says so) on throwaway databases, on ports 19400-19409.
  step "start-up and binary size"
  bin/tandem loadgen startup | tee -a "$out"
  # 19,000 is as many sockets as the 20,000 open files this container
  # allows one process (the hard limit; raising it needs CAP_SYS_RESOURCE),
  # so 50,000 are spread over three instances on one database (and three
  # peer processes), each at 16,667; the client ends are held by child
  # processes of the load generator, 16,000 at most each.
  step "idle customer WebSockets: Tandem, a gorilla/websocket echo server, Centrifugo"
  bin/tandem loadgen sockets --counts 10000,19000 --peer bin/wspeer --centrifugo bin/centrifugo | tee -a "$out"
  step "50,000 idle customer WebSockets over 3 instances (3 of each peer)"
  bin/tandem loadgen sockets --counts 50000 --instances 3 --peer bin/wspeer --centrifugo bin/centrifugo | tee -a "$out"
  step "message path: customer on instance A to agent on instance B"
  bin/tandem loadgen messages --rates 1000,3000 --duration 20s | tee -a "$out"
  step "burst: 100 new conversations and 500 messages a second for a minute"
  bin/tandem loadgen burst --new 100 --msgs 500 --for 60s | tee -a "$out"
  step "bot turns against a fake LLM (60 ms, then 20 tokens 10 ms apart), three runs and their medians"
  bin/tandem loadgen bot --rate 200 --duration 20s --runs 3 | tee -a "$out"
fi

if want api; then
  # Conversation throughput over REST and delivery over WebSocket, one
  # instance, closed loop: a fixed count of messages, so runs compare.
  step "REST and WebSocket throughput"
  go test -run '^$' -bench 'MessagesREST|DeliveryWebSocket' -benchtime 2000x -count 1 ./cmd/tandem/ | tee -a "$out"
fi

if want search; then
  # One knowledge base of real questions for both: BenchmarkSearch loads
  # it, times its HNSW build and measures search and recall against exact
  # search; BenchmarkTurnLocal (the bot's own time for a turn, no LLM) then
  # runs over the same chunks plus the demo's documents.
  kb="tandem_bench_kb_$$"
  psql "$TANDEM_TEST_DATABASE_URL" -qc "CREATE DATABASE $kb" >/dev/null
  kburl=$(echo "$TANDEM_TEST_DATABASE_URL" | sed -E "s#^(postgres(ql)?://[^/]*/)[^?]*#\1$kb#")
  chunks=${TANDEM_BENCH_SEARCH_CHUNKS:-100000}
  # Two builds at 100,000 (m 32 / ef_construction 128, then pgvector's
  # defaults, which EnsureIndex builds and BenchmarkTurnLocal then uses);
  # one at a million, where the second would take about 25 minutes more.
  hnsw=${TANDEM_BENCH_SEARCH_HNSW:-}
  if [ -z "$hnsw" ]; then
    if [ "$chunks" -le 100000 ]; then hnsw=32:128,16:64; else hnsw=16:64; fi
  fi
  step "hybrid search over $chunks chunks, HNSW builds (m:ef_construction) $hnsw"
  # -v shows the benchmark's log as it goes: corpus, load, exact search
  # and its check against PostgreSQL's, each build.
  TANDEM_BENCH_DATABASE_URL=$kburl TANDEM_BENCH_SEARCH_CHUNKS=$chunks TANDEM_BENCH_SEARCH_HNSW=$hnsw \
    go test -v -run '^$' -bench 'BenchmarkSearch$' -benchtime 600x -count 1 -timeout 120m ./retrieval/ | grep --line-buffered -v '^=== ' | tee -a "$out"
  step "the bot's local turn over the same $chunks chunks"
  TANDEM_BENCH_DATABASE_URL=$kburl TANDEM_BENCH_CHUNKS=$chunks \
    go test -run '^$' -bench 'TurnLocal' -benchtime 2000x -count 1 -timeout 60m ./bot/ | tee -a "$out"
fi

if want packages; then
  # Package benchmarks (embedder, classifier, ingestion) where they exist.
  step "package benchmarks"
  TANDEM_BENCH_CHUNKS= go test -run '^$' -bench . -benchtime 1s -count 1 ./retrieval/ ./bot/ ./knowledge/ 2>/dev/null | grep -E '^(Benchmark|ok|PASS)' | tee -a "$out" || true
fi

if want handoff; then
  # Escalation to assignment with 50 agents and 1,000 conversations; one
  # run each (a run is a whole scenario on a fresh database).
  step "handoff: escalation to assignment"
  go test -run '^$' -bench 'EscalationToAssignment|DrainQueue|EscalationUnderBacklog' -benchtime 1x -count 1 ./handoff/ | grep -E '^(Benchmark|ok|PASS)' | tee -a "$out"
fi

step "done in $(( ($(date +%s) - start) / 60 )) min $(( ($(date +%s) - start) % 60 )) s"
BENCH_LOAD="$load_start at the start, $(cut -d' ' -f1 /proc/loadavg) at the end" BENCH_MINUTES=$(( ($(date +%s) - start + 30) / 60 )) \
  go run ./scripts/benchdoc "$out" docs/benchmarks.md "${BENCH_BLOCK:-make bench}"
echo "wrote docs/benchmarks.md"
