# lib.sh: shared by run.sh, test.sh and bench.sh.
need_go() {
  if ! command -v go >/dev/null 2>&1; then
    echo "Go is not installed: installing Debian's golang-go (Go 1.21+ fetches the toolchain go.mod asks for)" >&2
    if [ "$(id -u)" -eq 0 ]; then apt-get update -qq >/dev/null && apt-get install -y -qq golang-go >/dev/null;
    else sudo apt-get update -qq >/dev/null && sudo apt-get install -y -qq golang-go >/dev/null; fi
  fi
}

# local_db prepares the project's own PostgreSQL and prints its URL.
local_db() {
  bash "$top/scripts/install-deps.sh"
  bash "$top/scripts/pg.sh"
}
