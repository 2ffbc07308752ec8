#!/usr/bin/env bash
# bench.sh: what `make bench` does: run the Go benchmarks against the local
# PostgreSQL and write their figures into docs/benchmarks.md.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
. scripts/lib.sh
need_go
if [ -z "${TANDEM_TEST_DATABASE_URL:-}" ]; then
  if [ -n "${DATABASE_URL:-}" ]; then export TANDEM_TEST_DATABASE_URL=$DATABASE_URL
  else TANDEM_TEST_DATABASE_URL=$(local_db); export TANDEM_TEST_DATABASE_URL; fi
fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT
# Conversation throughput: a fixed count of messages, so runs compare.
go test -run '^$' -bench 'MessagesREST|DeliveryWebSocket' -benchtime 5000x -count 1 ./cmd/tandem/ | tee -a "$out"
# Bot turn overhead in local mode (everything but an LLM) over 100,000
# chunks. Building that knowledge base takes minutes; set
# TANDEM_BENCH_DATABASE_URL to a database of your own to keep it between runs.
TANDEM_BENCH_CHUNKS=${TANDEM_BENCH_CHUNKS:-100000} go test -run '^$' -bench 'TurnLocal' -benchtime 2000x -count 1 -timeout 60m ./bot/ | tee -a "$out"
# Hybrid search over 100,000 chunks of real questions: p50/p99 and recall@10
# against exact search for ef_search 40, 100 and 200, HNSW build time and
# size (about 6 minutes). TANDEM_BENCH_SEARCH_HNSW=16:64,32:128 adds builds.
TANDEM_BENCH_SEARCH_CHUNKS=${TANDEM_BENCH_SEARCH_CHUNKS:-100000} go test -run '^$' -bench 'BenchmarkSearch$' -benchtime 600x -count 1 -timeout 60m ./retrieval/ | tee -a "$out"
# Package benchmarks (embedder, classifier, search) where they exist.
TANDEM_BENCH_CHUNKS= go test -run '^$' -bench . -benchtime 1s -count 1 ./retrieval/ ./bot/ ./knowledge/ 2>/dev/null | grep -E '^(Benchmark|ok|PASS)' | tee -a "$out" || true
# Handoff: escalation to assignment with 50 agents and 1,000 conversations;
# one run each (a run is a whole scenario on a fresh database).
go test -run '^$' -bench 'EscalationToAssignment|DrainQueue|EscalationUnderBacklog' -benchtime 1x -count 1 ./handoff/ | grep -E '^(Benchmark|ok|PASS)' | tee -a "$out"
go run ./scripts/benchdoc "$out" docs/benchmarks.md
echo "wrote docs/benchmarks.md"
