/* global process, console, setTimeout */
/**
 * Drizzle ORM (`drizzle-orm/mysql2`) on mysql2-keepalive-pool's promise pool. Drizzle takes a
 * mysql2/promise pool as its client; ours is one (mysql2's own PromisePool class over the
 * keepalive pool), so queries and transactions work unchanged.
 *
 *   MYSQL_URL=mysql://root@127.0.0.1:3306/test node examples/drizzle.mjs
 *
 * Connection settings come from MYSQL_* variables or MYSQL_URL. EXAMPLE_IDLE_MS makes it idle
 * between two rounds of work. The last line of output is a JSON summary.
 */
import { asc, eq, sql } from 'drizzle-orm';
import { int, mysqlTable, varchar } from 'drizzle-orm/mysql-core';
import { drizzle } from 'drizzle-orm/mysql2';
import { createPool } from 'mysql2-keepalive-pool/promise';

const tableName = `example_drizzle_${process.pid}`;
const idleMs = Number(process.env.EXAMPLE_IDLE_MS ?? 0);

const accounts = mysqlTable(tableName, {
  id: int('id').autoincrement().primaryKey(),
  owner: varchar('owner', { length: 50 }).notNull(),
  balance: int('balance').notNull(),
});

const pool = createPool({ connectionLimit: 4 });
const db = drizzle({ client: pool });

async function round(n) {
  // Queries, a few at once so that the pool really holds several connections.
  const pings = await Promise.all(
    [1, 2, 3].map((i) => db.execute(sql`SELECT ${i} + 0 AS v, CONNECTION_ID() AS cid`)),
  );
  const values = pings.map(([rows]) => Number(rows[0].v));

  await db.insert(accounts).values([
    { owner: `alice-${n}`, balance: 100 },
    { owner: `bob-${n}`, balance: 0 },
  ]);
  // A transfer in a transaction, then one that fails halfway and must leave nothing behind.
  await db.transaction(async (tx) => {
    await tx
      .update(accounts)
      .set({ balance: sql`${accounts.balance} - 30` })
      .where(eq(accounts.owner, `alice-${n}`));
    await tx
      .update(accounts)
      .set({ balance: sql`${accounts.balance} + 30` })
      .where(eq(accounts.owner, `bob-${n}`));
  });
  const rolledBack = await db
    .transaction(async (tx) => {
      await tx
        .update(accounts)
        .set({ balance: 0 })
        .where(eq(accounts.owner, `alice-${n}`));
      throw new Error('roll back');
    })
    .then(
      () => false,
      (err) => err.message === 'roll back',
    );

  const rows = await db
    .select({ owner: accounts.owner, balance: accounts.balance })
    .from(accounts)
    .where(sql`${accounts.owner} LIKE ${`%-${n}`}`)
    .orderBy(asc(accounts.id));
  console.log(`drizzle round ${n}: ${rows.map((r) => `${r.owner}=${r.balance}`).join(' ')}`);
  return { values, rolledBack, balances: rows.map((r) => r.balance) };
}

try {
  await db.execute(
    sql.raw(
      `CREATE TABLE IF NOT EXISTS ${tableName} (id INT AUTO_INCREMENT PRIMARY KEY, owner VARCHAR(50) NOT NULL, balance INT NOT NULL)`,
    ),
  );
  const rounds = [await round(1)];
  if (idleMs > 0) {
    await new Promise((resolve) => setTimeout(resolve, idleMs));
    rounds.push(await round(2));
  }
  await db.execute(sql.raw(`DROP TABLE ${tableName}`));
  // `pool.pool` is the callback pool underneath, with stats() and the health events.
  console.log(JSON.stringify({ example: 'drizzle', rounds, stats: pool.pool.stats() }));
} finally {
  await pool.end();
}
