#!/usr/bin/env bash
# Runs mysql2's own pool and PoolCluster tests with mysql2's createPool and createPoolCluster
# swapped for this package's, from a node-mysql2 checkout given by path. mysql2's tests are run
# where they are, unchanged (a --require preload does the swap: scripts/lib/mysql2-suite-preload.cjs);
# none of them is copied into this repository. Not part of npm test or CI (they have no checkout).
#
#   git clone https://github.com/sidorares/node-mysql2 /tmp/node-mysql2
#   (cd /tmp/node-mysql2 && git checkout v3.x.y && npm ci --ignore-scripts)
#   bash scripts/mysql2-suite.sh /tmp/node-mysql2            # the set the README names, below
#   bash scripts/mysql2-suite.sh /tmp/node-mysql2 test/unit/pool-cluster 'test/integration/test-pool*'
#
# The server: mysql2's tests read MYSQL_HOST, MYSQL_PORT, MYSQL_USER, MYSQL_PASSWORD and
# MYSQL_DATABASE (so does this pool); unset, they default here to 127.0.0.1:3306, root, no
# password, database test. Each file runs as its own node process (tsx from the checkout),
# one at a time, with a 60 s limit. Prints PASS/FAIL per file and a summary; exits 1 if any failed.
set -uo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
checkout="${1:-}"
if [ -z "$checkout" ] || [ ! -f "$checkout/package.json" ]; then
  echo "usage: $0 <path to a node-mysql2 checkout> [test files relative to it…]" >&2
  exit 2
fi
checkout="$(cd "$checkout" && pwd)"
shift
if ! grep -q '"name": "mysql2"' "$checkout/package.json"; then
  echo "mysql2-suite: $checkout is not a node-mysql2 checkout (package.json name is not mysql2)" >&2
  exit 2
fi
if [ ! -d "$checkout/node_modules/poku" ] || [ ! -d "$checkout/node_modules/tsx" ]; then
  echo "mysql2-suite: $checkout has no dev dependencies: run (cd $checkout && npm ci --ignore-scripts)" >&2
  exit 2
fi
if [ ! -f "$repo/dist/index.cjs" ] || [ ! -f "$repo/dist/promise.cjs" ]; then
  (cd "$repo" && npm run --silent build >/dev/null) || exit 2
fi

theirs="$(node -p "require('$checkout/package.json').version")"
ours="$(node -p "require('$repo/node_modules/mysql2/package.json').version")"
echo "mysql2-suite: mysql2 tests of $theirs ($checkout), this package's mysql2 is $ours"
[ "$theirs" = "$ours" ] || echo "mysql2-suite: note: versions differ; a test of a newer/older mysql2 feature may not apply"

shopt -s nullglob
cd "$checkout"
files=()
if [ $# -gt 0 ]; then
  # Files, directories or quoted globs, relative to the checkout.
  for arg in "$@"; do
    if [ -d "$arg" ]; then
      files+=("$arg"/*.test.mts)
    else
      # shellcheck disable=SC2206 # the glob is meant to expand here, inside the checkout
      files+=($arg)
    fi
  done
else
  # The files the README names: mysql2's pool tests that use only its public createPool API (the
  # other pool files read mysql2's private pool fields, _allConnections, _freeConnections…, which
  # this pool does not have; pass them by path to run them anyway), and every PoolCluster test.
  files=(
    test/integration/test-pool.test.mts
    test/integration/test-pool-connect-error.test.mts
    test/integration/test-pool-disconnect.test.mts
    test/integration/test-pool-memory-leak.test.mts
    test/integration/pool/test-pool-reset-on-release.test.mts
    test/integration/graceful-end/test-end-with-default-config.test.mts
    test/integration/graceful-end/test-pool-release-idle-with-default-config.test.mts
    test/integration/graceful-end/test-pool-release-idle-with-graceful-end-config.test.mts
    test/unit/pool/test-pool-connection-config-isolation.test.mts
    test/unit/pool/test-query-error-propagation.test.mts
    test/unit/pool-cluster/*.test.mts
    test/integration/pool-cluster/*.test.mts
    test/integration/dispose/*/pool-cluster.test.mts
  )
fi
shopt -u nullglob
if [ ${#files[@]} -eq 0 ]; then
  echo "mysql2-suite: no test files matched" >&2
  exit 2
fi

export MYSQL_HOST="${MYSQL_HOST:-127.0.0.1}"
export MYSQL_PORT="${MYSQL_PORT:-3306}"
export MYSQL_USER="${MYSQL_USER:-root}"
export MYSQL_DATABASE="${MYSQL_DATABASE:-test}"
export MKP_MYSQL2_CHECKOUT="$checkout"
preload="$repo/scripts/lib/mysql2-suite-preload.cjs"
log_dir="$(mktemp -d -t mysql2-suite.XXXXXX)"

pass=0
fail=0
failed=()
cd "$checkout"
for f in "${files[@]}"; do
  if [ ! -f "$f" ]; then
    # A file of the named set that this node-mysql2 version does not have.
    echo "FAIL $f (no such file in this checkout)"
    fail=$((fail + 1))
    failed+=("$f")
    continue
  fi
  log="$log_dir/$(echo "$f" | tr '/' '_').log"
  if timeout 60 node --import tsx --require "$preload" "$f" >"$log" 2>&1; then
    echo "PASS $f"
    pass=$((pass + 1))
  else
    echo "FAIL $f (log: $log)"
    fail=$((fail + 1))
    failed+=("$f")
  fi
done
echo "mysql2-suite: $pass passed, $fail failed of $((pass + fail)) files (logs in $log_dir)"
[ "$fail" -eq 0 ]
