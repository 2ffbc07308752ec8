#!/usr/bin/env bash
# soak.sh: what `make soak` does: run `tandem soak` for a bounded time on
# loopback and write its figures into the Soak section of
# docs/benchmarks.md.
#
# By default the soak runs on a private PostgreSQL cluster of its own (the
# same server programs make test uses), which it restarts as one of its
# faults; SOAK_DB=local runs it on a throwaway database on the local
# cluster (scripts/pg.sh) or DATABASE_URL instead, without restarting
# PostgreSQL. SOAK_DURATION (default 3m) bounds the traffic; extra
# arguments go to `tandem soak` (see `bin/tandem soak --help`).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
. scripts/lib.sh
need_go
bash scripts/install-deps.sh
args=(--duration "${SOAK_DURATION:-3m}" --doc docs/benchmarks.md)
if [ "${SOAK_DB:-private}" = local ]; then
  url=${DATABASE_URL:-$(bash scripts/pg.sh)}
  args+=(--database "$url")
else
  args+=(--private-db)
fi
exec bin/tandem soak "${args[@]}" "$@"
