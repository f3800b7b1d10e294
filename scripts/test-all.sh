#!/usr/bin/env bash
# Every test roost has, in order; the README's test command and what CI runs.
#
#   1. cargo fmt --check
#   2. cargo clippy --all-targets -- -D warnings
#   3. cargo test                      (unit + integration tests)
#   4. cargo build + tests/interop/run.sh   (slixmpp against the real binary)
#   5. fuzz/run.sh 60, if it exists    (smoke run: 60 s of fuzzing, FUZZ_SECONDS)
#   6. bench/side-by-side.sh --smoke   (the load generator against a release roost)
#   7. .ci/pi.sh, if it exists         (ARM cross builds, qemu, systemd, debs, boot test)
#
# A failing step does not stop the later ones; the script exits non-zero if any failed and
# closes with one line "N passed, N failed[, N skipped]" counting the steps.
# For quick local runs, skip steps with ROOST_SKIP_LINT=1 (1 and 2), ROOST_SKIP_INTEROP=1,
# ROOST_SKIP_FUZZ=1, ROOST_SKIP_BENCH=1, ROOST_SKIP_PI=1. CI skips nothing.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Hard limits per step, in seconds: a hung step fails instead of eating CI's 90 minutes.
FUZZ_SECONDS="${FUZZ_SECONDS:-60}"
# fuzzing plus installing cargo-fuzz and building the targets on a fresh machine
FUZZ_LIMIT="${ROOST_FUZZ_LIMIT:-$((FUZZ_SECONDS + 900))}"
PI_LIMIT="${ROOST_PI_LIMIT:-3600}"
CARGO_LIMIT="${ROOST_CARGO_LIMIT:-1800}"
INTEROP_LIMIT="${ROOST_INTEROP_LIMIT:-900}"

passed=0
failed=0
skipped=0
failures=()

# step NAME LIMIT_SECONDS COMMAND...: runs one step with its output on stdout/stderr as is.
step() {
    local name="$1" limit="$2"
    shift 2
    local start=$SECONDS status=0
    echo "=== $name"
    # On a terminal, --foreground keeps Ctrl-C working (timeout then kills only the command
    # itself, not what it started); elsewhere the whole process group goes at the limit.
    local fg=()
    [[ -t 0 ]] && fg=(--foreground)
    timeout "${fg[@]}" --kill-after=30 "$limit" "$@" || status=$?
    local took=$((SECONDS - start))
    if [[ $status -eq 0 ]]; then
        echo "=== $name: ok (${took} s)"
        passed=$((passed + 1))
    else
        if [[ $status -eq 124 ]]; then
            echo "=== $name: FAILED, killed after the ${limit} s limit"
        else
            echo "=== $name: FAILED with exit code $status (${took} s)"
        fi
        failed=$((failed + 1))
        failures+=("$name")
    fi
}

skip() {
    echo "=== $1: skipped ($2)"
    skipped=$((skipped + 1))
}

if [[ "${ROOST_SKIP_LINT:-0}" == 1 ]]; then
    skip "cargo fmt --check" "ROOST_SKIP_LINT=1"
    skip "cargo clippy" "ROOST_SKIP_LINT=1"
else
    step "cargo fmt --check" 300 cargo fmt --all --check
    step "cargo clippy" "$CARGO_LIMIT" cargo clippy --all-targets --locked -- -D warnings
fi

# cargo test writes its results to stdout; its "test result:" lines are what CI reads.
step "cargo test" "$CARGO_LIMIT" cargo test --locked

if [[ "${ROOST_SKIP_INTEROP:-0}" == 1 ]]; then
    skip "interop (slixmpp)" "ROOST_SKIP_INTEROP=1"
else
    step "interop (slixmpp)" "$INTEROP_LIMIT" \
        bash -c 'set -euo pipefail; cargo build --locked; tests/interop/run.sh'
fi

if [[ "${ROOST_SKIP_FUZZ:-0}" == 1 ]]; then
    skip "fuzz smoke" "ROOST_SKIP_FUZZ=1"
elif [[ -x fuzz/run.sh ]]; then
    step "fuzz smoke" "$FUZZ_LIMIT" fuzz/run.sh "$FUZZ_SECONDS"
elif [[ -e fuzz/run.sh ]]; then
    step "fuzz smoke" "$FUZZ_LIMIT" bash fuzz/run.sh "$FUZZ_SECONDS"
else
    skip "fuzz smoke" "no fuzz/run.sh"
fi

if [[ "${ROOST_SKIP_BENCH:-0}" == 1 ]]; then
    skip "load generator smoke" "ROOST_SKIP_BENCH=1"
else
    # A few seconds of every load mode against a release roost, so the benchmark cannot
    # rot; the real side-by-side run with Prosody is bench/side-by-side.sh (README).
    step "load generator smoke" 1200 bench/side-by-side.sh --smoke
fi

if [[ "${ROOST_SKIP_PI:-0}" == 1 ]]; then
    skip "pi" "ROOST_SKIP_PI=1"
elif [[ -e .ci/pi.sh ]]; then
    step "pi" "$PI_LIMIT" bash .ci/pi.sh
else
    skip "pi" "no .ci/pi.sh"
fi

if [[ $failed -gt 0 ]]; then
    echo "failed steps: ${failures[*]}"
fi
echo
if [[ $skipped -gt 0 ]]; then
    echo "$passed passed, $failed failed, $skipped skipped"
else
    echo "$passed passed, $failed failed"
fi
[[ $failed -eq 0 ]]
