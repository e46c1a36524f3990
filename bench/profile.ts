/**
 * One peer, one workload, for profiling the hot path:
 *
 *   node --cpu-prof --cpu-prof-dir=bench/results/prof --import tsx bench/profile.ts \
 *     --peer keepalive --method query --concurrency 32 --duration 5000
 *
 * `--method checkout` runs getConnection → release back to back. `--source tsx` runs this
 * pool from src/ through tsx instead of the built bundle (bench/build.ts). Prints queries (or checkouts)
 * per second and the client's CPU time per operation. `--alloc FILE.heapprofile` samples every
 * allocation of the measured run (collected objects included) into FILE. Summarise either with
 * `npx tsx bench/prof-summary.ts FILE`.
 */
import fs from 'node:fs';
import { Session } from 'node:inspector/promises';
import { performance } from 'node:perf_hooks';
import { dbOptions } from '../test/support/db.js';
import { buildPool } from './build.js';
import { checkoutSamples, fill, throughputCell } from './measure.js';
import type { Method } from './measure.js';
import { createPeer, PEERS, useKeepaliveModule } from './peers.js';
import type { PeerName } from './peers.js';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? def) : def;
}

async function main(): Promise<void> {
  const peer = arg('peer', 'keepalive') as PeerName;
  if (!PEERS.includes(peer)) throw new Error(`unknown peer ${peer}`);
  const method = arg('method', 'query');
  const concurrency = Number(arg('concurrency', '32'));
  const durationMs = Number(arg('duration', '5000'));
  const connectionLimit = Number(arg('connection-limit', '10'));
  const allocFile = arg('alloc', '');
  useKeepaliveModule(arg('source', 'build') === 'tsx' ? null : await buildPool());
  const pool = createPeer(peer, { db: dbOptions(), connectionLimit });
  // --with PEER[,PEER]: other pools in the same process, warmed with the same workload first
  // (what the alternating bench does), to see how peers affect each other.
  const others = arg('with', '')
    .split(',')
    .filter(Boolean)
    .map((p) => createPeer(p as PeerName, { db: dbOptions(), connectionLimit }));
  for (const other of others) {
    await fill(other, connectionLimit);
    if (method !== 'checkout') await throughputCell(other, method as Method, concurrency, 1000);
  }
  const session = new Session();
  try {
    await fill(pool, connectionLimit);
    if (method !== 'checkout') await throughputCell(pool, method as Method, concurrency, 500);
    if (allocFile) {
      session.connect();
      await session.post('HeapProfiler.startSampling', {
        samplingInterval: 256,
        includeObjectsCollectedByMajorGC: true,
        includeObjectsCollectedByMinorGC: true,
      } as never);
    }
    const cpu0 = process.cpuUsage();
    let ops: number;
    let ms: number;
    if (method === 'checkout') {
      ops = Math.max(1000, durationMs * 100);
      const t0 = performance.now();
      await checkoutSamples(pool, ops, 0);
      ms = performance.now() - t0;
    } else {
      const res = await throughputCell(pool, method as Method, concurrency, durationMs);
      ops = res.count;
      ms = res.elapsedMs;
    }
    const cpu = process.cpuUsage(cpu0);
    let allocated = '';
    if (allocFile) {
      const { profile } = (await session.post('HeapProfiler.stopSampling')) as unknown as {
        profile: { samples: Array<{ size: number }> };
      };
      fs.writeFileSync(allocFile, JSON.stringify(profile));
      const bytes = profile.samples.reduce((sum, x) => sum + x.size, 0);
      allocated = `, about ${Math.round(bytes / ops)} bytes allocated per operation`;
    }
    process.stdout.write(
      `${peer} ${method}${method === 'checkout' ? '' : ` c=${concurrency}`}: ` +
        `${Math.round((ops * 1000) / ms)} per second, ` +
        `client CPU ${((cpu.user + cpu.system) / ops).toFixed(2)} µs per operation ` +
        `(user ${(cpu.user / ops).toFixed(2)}, system ${(cpu.system / ops).toFixed(2)})` +
        `${allocated}\n`,
    );
  } finally {
    session.disconnect();
    await Promise.all([pool, ...others].map((p) => p.end()));
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`profile failed: ${e instanceof Error ? e.stack : String(e)}\n`);
  process.exitCode = 1;
});
