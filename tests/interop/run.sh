#!/usr/bin/env bash
# Runs the slixmpp interop suite against an already built roost (ROOST_BIN, default
# target/debug/roost). Creates the venv .venv-interop at the repository root on first use.
#   tests/interop/run.sh [pytest args…]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

venv="${ROOST_INTEROP_VENV:-$root/.venv-interop}"
python="${PYTHON:-python3}"

if [[ ! -x "$venv/bin/python" ]]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    -r "$here/requirements.txt"

# npm packages at the versions in their lock files: xmpp.js for test_xmppjs.py
# (tests/interop/xmppjs), xmpp.js, Converse.js and ws for test_websocket.py (tests/web).
for dir in "$here/xmppjs" "$root/tests/web"; do
    if command -v npm >/dev/null 2>&1 && [[ ! -d "$dir/node_modules/@xmpp/client" \
            || "$dir/package-lock.json" -nt "$dir/node_modules" ]]; then
        (cd "$dir" && npm ci --no-audit --no-fund --silent)
    fi
done

bin="${ROOST_BIN:-target/debug/roost}"
[[ "$bin" = /* ]] || bin="$root/$bin"
if [[ ! -x "$bin" ]]; then
    echo "interop: no roost binary at $bin (cargo build first, or set ROOST_BIN)" >&2
    exit 1
fi
export ROOST_BIN="$bin"

status=0
"$venv/bin/python" -m pytest -q tests/interop "$@" || status=$?
if [[ $status -eq 5 ]]; then
    echo "interop: pytest collected no tests; that is a failure" >&2
    exit 1
fi
exit "$status"
