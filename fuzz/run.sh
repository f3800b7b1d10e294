#!/bin/sh
# Runs the framer fuzz target for SECONDS (default 60); exits non-zero on a crash.
# cargo-fuzz needs nightly features (sanitizers); with only a stable toolchain,
# RUSTC_BOOTSTRAP=1 unlocks them.
set -eu
seconds="${1:-60}"
cd "$(dirname "$0")"
# A stale Cargo.lock would be rewritten by the build and leave the checkout changed: fail
# instead, saying what to do.
if ! cargo metadata --locked --format-version 1 >/dev/null; then
    echo "fuzz/Cargo.lock is out of date: run 'cargo update -w' in fuzz/ and commit it" >&2
    exit 1
fi
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
if rustup run nightly rustc --version >/dev/null 2>&1; then
    toolchain="+nightly"
else
    toolchain=""
    export RUSTC_BOOTSTRAP=1
fi
mkdir -p corpus/framer
# Seeds: a realistic stream, so that the fuzzer starts from valid XMPP.
printf 'Z%s' "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.org' version='1.0'><message to='a@b' id=\"x>y\"><body>a &amp; b &#65;</body><x xmlns='urn:x'><![CDATA[<z>]]></x></message> <restart/><stream:stream xmlns:stream='http://etherx.jabber.org/streams'><iq xml:lang='en'/></stream:stream>" > corpus/framer/seed-stream
# shellcheck disable=SC2086
exec cargo $toolchain fuzz run framer corpus/framer -- -max_total_time="$seconds" -max_len=4096
