#!/usr/bin/env bash
# Runs the tests that depend on the Node version (keepalive socket options, the pool, tracing,
# TLS, the examples) on every supported Node major other than the machine's own, which `npm test`
# already covers with the whole suite. The other versions come from the npm registry: the `node`
# package ships the official binaries inside registry packages, so `npx -y node@22` works where
# only the registry is reachable.
#
#   bash scripts/test-node-versions.sh            # Node 20, 22 and 24 (minus the machine's)
#   NODE_VERSIONS="22.23.3" bash scripts/test-node-versions.sh
#
# Needs dist/ (built here if missing), the local MariaDB and, for the kernel-rig files, root and
# iptables, like `npm test`. A version that cannot be fetched is an error, never a silent skip.
set -euo pipefail
cd "$(dirname "$0")/.."

versions="${NODE_VERSIONS:-20 22 24}"
own_major="$(node -p 'process.versions.node.split(".")[0]')"

# The subset: everything that exercises Node's sockets, timers, diagnostics_channel, TLS or module
# loading through the pool. Left out: the README/demo/packaging/benchmark checks (they do not
# depend on the Node version) and the long outage and partition scenarios.
files=(
  test/unit/*.test.ts
  test/integration/node-keepalive.test.ts
  test/integration/pool-mysql2-behaviour.test.ts
  test/integration/lifecycle.test.ts
  test/integration/server-kill.test.ts
  test/integration/retry.test.ts
  test/integration/tracing.test.ts
  test/integration/tls.test.ts
  test/integration/bounded-failure.test.ts
  test/integration/conntrack-pool.test.ts
  test/integration/ecosystem.test.ts
)
for f in "${files[@]}"; do
  [ -f "$f" ] || { echo "test-node-versions: missing $f" >&2; exit 1; }
done

[ -f dist/index.cjs ] && [ -f dist/index.mjs ] || npm run --silent build >/dev/null

verified=()
for v in $versions; do
  major="${v%%.*}"
  if [ "$major" = "$own_major" ] && [ -z "${NODE_VERSIONS:-}" ]; then
    echo "test-node-versions: Node $(node -v) is the machine's own: covered by npm test"
    verified+=("$(node -v) (npm test)")
    continue
  fi
  echo "test-node-versions: fetching node@$v from the npm registry"
  if ! bin="$(npx -y "node@$v" -p 'process.execPath' 2>/tmp/test-node-versions.$$.err)"; then
    echo "test-node-versions: Node $v could NOT be fetched from the npm registry:" >&2
    cat /tmp/test-node-versions.$$.err >&2
    rm -f /tmp/test-node-versions.$$.err
    exit 1
  fi
  rm -f /tmp/test-node-versions.$$.err
  got="$("$bin" -p 'process.versions.node')"
  if [ "${got%%.*}" != "$major" ] || { [[ "$v" == *.* ]] && [ "$got" != "$v" ]; }; then
    echo "test-node-versions: asked for Node $v, got $got ($bin)" >&2
    exit 1
  fi
  echo "test-node-versions: Node $got (libuv $("$bin" -p 'process.versions.uv'), OpenSSL $("$bin" -p 'process.versions.openssl')) at $bin"
  "$bin" --import tsx --test --test-concurrency=1 "${files[@]}"
  verified+=("v$got")
done
echo "test-node-versions: verified on ${verified[*]}"
