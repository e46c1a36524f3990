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
exec node --import tsx --test --test-concurrency=1 "${files[@]}"
