#!/usr/bin/env bash
# browser.sh: make sure a headless-capable Chromium is on this machine for the
# browser tests (cmd/tandem/browser_test.go).
#
# Idempotent and quick when Chromium is present. On Debian/Ubuntu it installs
# the distribution's `chromium` package with apt-get (as root, or through
# sudo). When it cannot, it says so and leaves the browser tests to skip with
# a clear message; it never fails `make test` by itself.
set -uo pipefail

say() { printf 'browser: %s\n' "$*" >&2; }

for b in chromium chromium-browser google-chrome; do
  if command -v "$b" >/dev/null 2>&1; then exit 0; fi
done

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo"
  else
    say "Chromium is missing and installing it needs root or sudo; the browser tests will be skipped"
    exit 0
  fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
  say "Chromium is missing and apt-get is not available; install chromium to run the browser tests"
  exit 0
fi

say "installing Debian's chromium package for the browser tests"
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-noto-cjk >/dev/null 2>&1; then
  $SUDO apt-get update -qq >/dev/null 2>&1 || say "apt-get update failed; trying with the lists at hand"
  if ! $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-noto-cjk >/dev/null; then
    # The CJK fonts only make screenshots of Chinese text readable.
    $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null ||
      say "could not install chromium; the browser tests will be skipped"
  fi
fi
exit 0
