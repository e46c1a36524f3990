/**
 * Hot checkout, this pool against mysql2's, paired in one process: `getConnection` → callback →
 * `release` back to back on a warm pool (inside the validation skip window: nothing is
 * validated), in alternating rounds. Prints ns per checkout, median and all rounds.
 *
 *   npx tsx bench/hot-checkout.ts [--checkouts 300000] [--rounds 5] [--source tsx]
 *
 * This pool runs as its CommonJS bundle (bench/build.ts), as users `require()` it.
 */
import { dbOptions } from '../test/support/db.js';
import { buildPool } from './build.js';
import { fill, hotCheckouts } from './measure.js';
import { createPeer, useKeepaliveModule } from './peers.js';
import type { PeerPool } from './peers.js';
import { median } from './stats.js';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? def) : def;
}

/** `n` checkouts back to back; resolves with ns per checkout. */
async function loop(pool: PeerPool, n: number): Promise<number> {
  return (await hotCheckouts(pool, n)) / n;
}

async function main(): Promise<void> {
  const n = Number(arg('checkouts', '300000'));
  const rounds = Number(arg('rounds', '5'));
  useKeepaliveModule(arg('source', 'build') === 'tsx' ? null : await buildPool());
  const pools = (['keepalive', 'mysql2'] as const).map((p) =>
    createPeer(p, { db: dbOptions(), connectionLimit: 8 }),
  );
  try {
    for (const p of pools) {
      await fill(p, 1);
      await loop(p, n);
    }
    const ns = new Map(pools.map((p) => [p.name, [] as number[]]));
    for (let r = 0; r < rounds; r++) {
      for (const p of r % 2 ? [...pools].reverse() : pools) ns.get(p.name)!.push(await loop(p, n));
    }
    for (const [name, values] of ns) {
      process.stdout.write(
        `${name.padEnd(10)} hot checkout: ${median(values).toFixed(0)} ns median (${values.map((v) => v.toFixed(0)).join(', ')})\n`,
      );
    }
  } finally {
    await Promise.all(pools.map((p) => p.end()));
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`hot-checkout failed: ${e instanceof Error ? e.stack : String(e)}\n`);
  process.exitCode = 1;
});
