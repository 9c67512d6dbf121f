#!/usr/bin/env bash
# Install Debian's Chromium for the browser tests (tests/browser), once.
# Idempotent and quiet: does nothing when /usr/bin/chromium exists; otherwise runs
# `apt-get install chromium` (and `apt-get update` first only when apt does not know
# the package yet). Needs root, or sudo without a password. Exit status 0 = installed.
# Playwright's own browser download (`playwright install`) is never used.
set -euo pipefail

CHROMIUM=/usr/bin/chromium
[ -x "$CHROMIUM" ] && exit 0

if [ "$(id -u)" = 0 ]; then
  SUDO=
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO="sudo -n"
else
  echo "install_browser: $CHROMIUM is missing and this user cannot run apt-get." >&2
  echo "  Ask an administrator to run: apt-get update && apt-get install -y chromium" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_browser: $CHROMIUM is missing and apt-get is not available (not Debian/Ubuntu?)." >&2
  echo "  Install Chromium so that $CHROMIUM exists, then run the tests again." >&2
  exit 1
fi

LOG="${TMPDIR:-/tmp}/install_browser.$$.log"
trap 'rm -f "$LOG"' EXIT
export DEBIAN_FRONTEND=noninteractive

# `apt-get update` only when the package lists do not offer chromium yet.
if ! apt-cache policy chromium 2>/dev/null | grep -q 'Candidate: [0-9]'; then
  echo "install_browser: apt-get update ..." >&2
  if ! $SUDO apt-get update -qq >"$LOG" 2>&1; then
    cat "$LOG" >&2; echo "install_browser: apt-get update failed" >&2; exit 1
  fi
fi

echo "install_browser: installing Debian's chromium (about 10 s) ..." >&2
if ! $SUDO apt-get install -y -qq --no-install-recommends chromium >"$LOG" 2>&1; then
  cat "$LOG" >&2; echo "install_browser: apt-get install chromium failed" >&2; exit 1
fi
if [ ! -x "$CHROMIUM" ]; then
  echo "install_browser: apt-get reported success but $CHROMIUM is missing" >&2; exit 1
fi
