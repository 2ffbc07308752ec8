#!/usr/bin/env bash
# install-deps.sh: make sure a PostgreSQL server with pgvector is on this machine.
#
# Idempotent and quick when everything is present. On Debian/Ubuntu it installs
# what is missing with apt-get (as root, or through sudo). Where the distribution
# has no binary pgvector package (Debian bookworm), it fetches Debian's pgvector
# source package from the next suite through a private apt configuration, so
# the system's own sources and lists stay untouched, and builds it against
# postgresql-server-dev.
set -euo pipefail

say() { printf 'install-deps: %s\n' "$*" >&2; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
fi

apt_updated=""
apt_install() {
  if ! command -v apt-get >/dev/null 2>&1; then
    say "apt-get not found; please install: $*"
    exit 1
  fi
  if [ -z "$apt_updated" ]; then
    $SUDO apt-get update -qq >/dev/null || say "apt-get update failed; trying with the lists at hand"
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# pg_bindir prints the newest installed PostgreSQL server's bin folder.
pg_bindir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -n "$d" ] && [ -x "$d/postgres" ]; then echo "$d"; fi
}

# 1. The PostgreSQL server.
if [ -z "$(pg_bindir)" ]; then
  say "installing the PostgreSQL server"
  apt_install postgresql postgresql-contrib
fi
bindir=$(pg_bindir)
if [ -z "$bindir" ]; then say "no PostgreSQL server after install"; exit 1; fi
pgver=$(basename "$(dirname "$bindir")")
sharedir="/usr/share/postgresql/$pgver"

# 2. pgvector.
if [ -f "$sharedir/extension/vector.control" ]; then
  exit 0
fi
say "installing pgvector for PostgreSQL $pgver"
if command -v apt-get >/dev/null 2>&1; then
  if [ -z "$apt_updated" ]; then $SUDO apt-get update -qq >/dev/null || true; apt_updated=1; fi
  if apt-cache show "postgresql-$pgver-pgvector" >/dev/null 2>&1; then
    apt_install "postgresql-$pgver-pgvector"
  fi
fi
if [ -f "$sharedir/extension/vector.control" ]; then exit 0; fi

# No binary package: build Debian's source package.
say "no binary pgvector package; building Debian's pgvector source package"
apt_install "postgresql-server-dev-$pgver" build-essential dpkg-dev
work=$(mktemp -d /tmp/tandem-pgvector.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/archives/partial"
# The mirror is the one this machine already uses, read from its own sources.
mirror=$(grep -hoE '^(URIs:|deb) +[a-z]+://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null \
  | grep -v security | head -n 1 | awk '{print $2}' || true)
if [ -z "$mirror" ]; then say "cannot find this machine's Debian mirror in its apt sources"; exit 1; fi
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
echo "deb-src [signed-by=$keyring] $mirror trixie main" >"$work/sources.list"
aptopts=(-o "Dir::Etc::sourcelist=$work/sources.list" -o "Dir::Etc::sourceparts=-"
  -o "Dir::State::Lists=$work/lists" -o "Dir::Cache::Archives=$work/archives"
  -o "APT::Get::List-Cleanup=0")
apt-get "${aptopts[@]}" update -qq >/dev/null
(cd "$work" && apt-get "${aptopts[@]}" source --download-only -qq pgvector >/dev/null 2>&1 || \
  apt-get "${aptopts[@]}" source -qq pgvector >/dev/null)
dsc=$(ls "$work"/pgvector_*.dsc | head -n 1)
(cd "$work" && dpkg-source -x --no-check "$dsc" src >/dev/null)
make -s -C "$work/src" PG_CONFIG="$bindir/pg_config" >/dev/null 2>&1
$SUDO make -s -C "$work/src" PG_CONFIG="$bindir/pg_config" install >/dev/null
if [ ! -f "$sharedir/extension/vector.control" ]; then say "pgvector build did not install"; exit 1; fi
say "pgvector installed"
