#!/usr/bin/env bash
# Builds the codec fuzz target with clang (libFuzzer + ASan + UBSan) and runs it.
#   scripts/fuzz.sh [SECONDS]   default 60; new inputs go to build-fuzz/corpus, crashes to
#                               build-fuzz/ (add a fixed crash's input to tests/fuzz/corpus/)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
CC=clang CXX=clang++ cmake -S . -B build-fuzz -DMQTLS_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz --target fuzz_codec --parallel "$(nproc)"
mkdir -p build-fuzz/corpus
cd build-fuzz
./tests/fuzz/fuzz_codec -max_total_time="$seconds" -max_len=70000 corpus ../tests/fuzz/corpus
