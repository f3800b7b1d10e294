#!/bin/sh
# Runs the fuzz targets (framer, websocket) for SECONDS in all (default 60, half each);
# exits non-zero on a crash.
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
mkdir -p corpus/framer corpus/websocket
# Seeds: a realistic stream, so that the fuzzer starts from valid XMPP.
printf 'Z%s' "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.org' version='1.0'><message to='a@b' id=\"x>y\"><body>a &amp; b &#65;</body><x xmlns='urn:x'><![CDATA[<z>]]></x></message> <restart/><stream:stream xmlns:stream='http://etherx.jabber.org/streams'><iq xml:lang='en'/></stream:stream>" > corpus/framer/seed-stream
# Frames shaped like a client's: masked text, a fragment with a ping after it, a close.
printf '\007\201\236\001\002\003\004=mlja"yljgmnm9&ldrmqq`>&tr`bb//\001\211\001\002\003\004=rhsf\002\216\001\002\003\004=mwmpy\200\204\001\002\003\004.?>c\210\202\001\002\003\004\002\352' > corpus/websocket/seed-frames
# Half the time each.
half=$(( (seconds + 1) / 2 ))
# shellcheck disable=SC2086
cargo $toolchain fuzz run framer corpus/framer -- -max_total_time="$half" -max_len=4096
# shellcheck disable=SC2086
exec cargo $toolchain fuzz run websocket corpus/websocket -- -max_total_time="$half" -max_len=4096
