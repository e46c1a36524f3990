#!/usr/bin/env bash
# The one test command (npm test): type-check, lint, build, then every test file with node's
# test runner. Kernel (conntrack) tests need root + iptables; under CI=true they fail rather than
# skip when those are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
npm run --silent typecheck
npm run --silent lint
npm run --silent build >/dev/null
shopt -s nullglob
files=(test/unit/*.test.ts test/integration/*.test.ts)
# Files run one at a time: the kernel rig and the throwaway servers are machine-wide resources.
# Every test (and every suite) fails after TEST_TIMEOUT_MS instead of hanging the run: a broken
# eviction or a lost callback shows up as a named failure. The slowest test takes well under a
# minute; the bound is loose on purpose for a loaded machine.
exec node --import tsx --test --test-concurrency=1 --test-timeout="${TEST_TIMEOUT_MS:-180000}" "${files[@]}"
