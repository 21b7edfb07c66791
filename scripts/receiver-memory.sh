#!/bin/sh
# Issue 17's receive-side memory figures: peak RSS above idle of a release tailgate for 1,000
# stalled gRPC streams with 4 MiB partial messages, and for the OTLP/JSON gzip bomb.
# Usage: scripts/receiver-memory.sh [path/to/tailgate]   (default: builds target/release/tailgate)
# Prints lines starting with FIGURE.
set -eu
cd "$(dirname "$0")/.."
if [ $# -ge 1 ]; then
    bin=$(realpath "$1")
else
    cargo build --release -p tailgate
    bin=$PWD/target/release/tailgate
fi
TAILGATE_BIN=$bin cargo test -p tailgate --test receiver_memory -- --ignored --nocapture --test-threads 1 2>&1 |
    grep -E 'FIGURE|test result|panicked|assert'
