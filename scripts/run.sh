#!/usr/bin/env bash
# run.sh: what `make run` does after building bin/tandem.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
. scripts/lib.sh

if [ -z "${DATABASE_URL:-}" ]; then
  local_db >/dev/null
  # DATABASE_URL stays unset: tandem finds the local cluster through
  # .data/database_url and knows it may create the demo accounts there.
fi
bin/tandem migrate
demo=""
if [ -z "${DATABASE_URL:-}" ]; then
  demo=$(bin/tandem demo-users)
fi
if [ -d examples ] && bin/tandem help 2>/dev/null | grep -q ingest; then
  bin/tandem ingest --quiet examples
fi
addr=${TANDEM_ADDR:-127.0.0.1:8080}
cat <<MSG

  Tandem is starting on http://$addr
    customer chat     http://$addr/chat
    agent console     http://$addr/console
    knowledge editor  http://$addr/knowledge
    admin             http://$addr/admin
    API               http://$addr/api/v1  (see README.md)
MSG
if [ -n "$demo" ]; then
  printf '\n  Demo sign-ins:\n%s\n' "$demo"
fi
echo
exec bin/tandem serve
