#!/usr/bin/env bash
# Builds mqtls with ThreadSanitizer and runs the tests that exercise several threads at once: the
# unit tests of net/ (reloader), tls/ (context, session and ticket stores, OCSP cache) and the
# admin listener, and the integration tests where reloads, resumption, revocation, SNI and admin
# requests cross threads while two workers serve connections. Exits non-zero on any failure or
# on any ThreadSanitizer report.
#   $1                 build directory (default: build-tsan next to the sources)
#   MQTLS_TSAN_TESTS   ctest -R regex of the tests to run (default: the list below)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
dir=${1:-$root/build-tsan}
jobs=$(nproc 2>/dev/null || echo 2)
tests=${MQTLS_TSAN_TESTS:-'^(net_test|tls_test|admin_test|integration_(reload|resumption|revocation|admin|sni))$'}

# Every report fails the run: halt_on_error ends the process at the first report with exitcode
# (which the unit tests' ctest entries and the integration harness both treat as a failure; the
# harness also fails on "SUMMARY: ThreadSanitizer" in mqtls' log). second_deadlock_stack gives
# both stacks of a lock-order inversion. Suppressions only cover uninstrumented libraries.
export TSAN_OPTIONS="halt_on_error=1:exitcode=66:second_deadlock_stack=1:history_size=4:suppressions=$root/scripts/tsan.supp${TSAN_OPTIONS:+:$TSAN_OPTIONS}"

echo "== build ($dir, ThreadSanitizer)"
cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMQTLS_SANITIZE=thread >/dev/null
cmake --build "$dir" --parallel "$jobs" --target mqtls net_test tls_test admin_test \
  forged_key_client
echo "== test ($dir, ThreadSanitizer)"
(cd "$dir" && ctest --output-on-failure --timeout 300 -j "$jobs" -R "$tests")
echo "== no ThreadSanitizer report"
