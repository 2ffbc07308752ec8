#!/usr/bin/env bash
# test.sh: what `make test` does: prepare PostgreSQL with pgvector, then vet
# and run every test with the race detector.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
. scripts/lib.sh
need_go

if [ -z "${TANDEM_TEST_DATABASE_URL:-}" ]; then
  if [ -n "${DATABASE_URL:-}" ]; then
    export TANDEM_TEST_DATABASE_URL=$DATABASE_URL
  else
    TANDEM_TEST_DATABASE_URL=$(local_db)
    export TANDEM_TEST_DATABASE_URL
  fi
fi
if [ -f scripts/browser.sh ]; then bash scripts/browser.sh; fi

echo "== go vet"
go vet ./...
echo "== go test -race"
go test -race -count=1 -timeout 20m "$@" ./...
