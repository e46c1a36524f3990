/* global process, console, setTimeout */
/**
 * Kysely on mysql2-keepalive-pool. Kysely's MysqlDialect takes a mysql2 callback pool; ours has
 * the same surface, so nothing else changes: queries, transactions and streaming work as with
 * mysql2's pool, and a connection that a middlebox forgot is never handed to Kysely.
 *
 *   MYSQL_URL=mysql://root@127.0.0.1:3306/test node examples/kysely.mjs
 *
 * Connection settings come from MYSQL_* variables (MYSQL_HOST, MYSQL_USER, MYSQL_PASSWORD_FILE,
 * MYSQL_SSL_MODE…) or MYSQL_URL. EXAMPLE_IDLE_MS makes it idle between two rounds of work, like a
 * worker between jobs. The last line of output is a JSON summary.
 */
import { Kysely, MysqlDialect, sql } from 'kysely';
import { createPool } from 'mysql2-keepalive-pool';

const table = `example_kysely_${process.pid}`;
const idleMs = Number(process.env.EXAMPLE_IDLE_MS ?? 0);

const pool = createPool({ connectionLimit: 4 });
const db = new Kysely({ dialect: new MysqlDialect({ pool }) });

async function round(n) {
  // Queries, a few at once so that the pool really holds several connections.
  const [one, two, three] = await Promise.all(
    [1, 2, 3].map((i) => sql`SELECT ${i} + 0 AS v, CONNECTION_ID() AS cid`.execute(db)),
  );
  const values = [one, two, three].map((r) => Number(r.rows[0].v));

  // A transaction: both rows or neither.
  await db.transaction().execute(async (trx) => {
    await trx
      .insertInto(table)
      .values([{ name: `round ${n} a` }, { name: `round ${n} b` }])
      .execute();
  });
  const rolledBack = await db
    .transaction()
    .execute(async (trx) => {
      await trx
        .insertInto(table)
        .values({ name: `round ${n} never` })
        .execute();
      throw new Error('roll back');
    })
    .then(
      () => false,
      (err) => err.message === 'roll back',
    );

  // Streaming: rows arrive one by one from mysql2's query stream.
  let streamed = 0;
  for await (const row of db.selectFrom(table).selectAll().orderBy('id').stream()) {
    if (typeof row.name === 'string') streamed++;
  }
  console.log(`kysely round ${n}: ${streamed} rows streamed`);
  return { values, rolledBack, streamed };
}

try {
  await db.schema
    .createTable(table)
    .ifNotExists()
    .addColumn('id', 'integer', (c) => c.autoIncrement().primaryKey())
    .addColumn('name', 'varchar(50)', (c) => c.notNull())
    .execute();
  const rounds = [await round(1)];
  if (idleMs > 0) {
    await new Promise((resolve) => setTimeout(resolve, idleMs));
    rounds.push(await round(2));
  }
  await db.schema.dropTable(table).execute();
  console.log(JSON.stringify({ example: 'kysely', rounds, stats: pool.stats() }));
} finally {
  await db.destroy(); // ends the pool
}
