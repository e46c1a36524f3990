/* global require, process, console, setTimeout */
/**
 * TypeORM with mysql2-keepalive-pool as its driver. TypeORM's `driver` option takes the module
 * that has `createPool` (mysql2, normally); TypeORM calls `createPool` on it with its own
 * options, and from then on only uses the pool: this package's root has the same shape.
 *
 *   MYSQL_URL=mysql://root@127.0.0.1:3306/test node examples/typeorm.cjs
 *
 * TypeORM's own options (host, username, poolSize, extra…) win; what it leaves unset comes from
 * MYSQL_* variables or MYSQL_URL. EXAMPLE_IDLE_MS makes it idle between two rounds of work. The
 * last line of output is a JSON summary.
 */
const { DataSource, EntitySchema } = require('typeorm');

const idleMs = Number(process.env.EXAMPLE_IDLE_MS ?? 0);

const Note = new EntitySchema({
  name: 'Note',
  tableName: `example_typeorm_${process.pid}`,
  columns: {
    id: { type: Number, primary: true, generated: true },
    body: { type: String, length: 100 },
  },
});

const dataSource = new DataSource({
  type: 'mysql',
  driver: require('mysql2-keepalive-pool'),
  poolSize: 4,
  entities: [Note],
  synchronize: true, // creates the table
  // Options of this pool pass through TypeORM's `extra`, e.g. { idlePingInterval: 60000 }.
  extra: {},
});

async function round(n) {
  const notes = dataSource.getRepository(Note);
  // Queries, a few at once so that the pool really holds several connections.
  const results = await Promise.all(
    [1, 2, 3].map((i) => dataSource.query('SELECT ? + 0 AS v, CONNECTION_ID() AS cid', [i])),
  );
  const values = results.map((rows) => Number(rows[0].v));

  await dataSource.transaction(async (manager) => {
    await manager.save(Note, [{ body: `round ${n} a` }, { body: `round ${n} b` }]);
  });
  const rolledBack = await dataSource
    .transaction(async (manager) => {
      await manager.save(Note, { body: `round ${n} never` });
      throw new Error('roll back');
    })
    .then(
      () => false,
      (err) => err.message === 'roll back',
    );
  const count = await notes.count();
  console.log(`typeorm round ${n}: ${count} notes`);
  return { values, rolledBack, count };
}

async function main() {
  await dataSource.initialize();
  try {
    const rounds = [await round(1)];
    if (idleMs > 0) {
      await new Promise((resolve) => setTimeout(resolve, idleMs));
      rounds.push(await round(2));
    }
    await dataSource.query(`DROP TABLE ${Note.options.tableName}`);
    // TypeORM keeps the pool it created on its driver.
    const stats = dataSource.driver.pool.stats();
    console.log(JSON.stringify({ example: 'typeorm', rounds, stats }));
  } finally {
    await dataSource.destroy(); // ends the pool
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
