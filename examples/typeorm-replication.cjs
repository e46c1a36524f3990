/* global require, process, console, setTimeout */
/**
 * TypeORM's `replication` (one master for writes, slaves for reads) with mysql2-keepalive-pool as
 * its driver. TypeORM calls `createPoolCluster` on the driver module and adds a node per server
 * ("MASTER", "SLAVE0", "SLAVE1"…); every node is one of this package's pools.
 *
 *   MYSQL_URL=mysql://root@127.0.0.1:3306/test node examples/typeorm-replication.cjs
 *
 * Here every node config is empty, so each node's connection settings come from MYSQL_*
 * variables (in production: `master: { host: 'primary' }, slaves: [{ host: 'replicas' }]`).
 * EXAMPLE_IDLE_MS makes it idle between two rounds of work. The last line of output is a JSON
 * summary.
 */
const { DataSource, EntitySchema } = require('typeorm');

const idleMs = Number(process.env.EXAMPLE_IDLE_MS ?? 0);

const Note = new EntitySchema({
  name: 'Note',
  tableName: `example_typeorm_repl_${process.pid}`,
  columns: {
    id: { type: Number, primary: true, generated: true },
    body: { type: String, length: 100 },
  },
});

const dataSource = new DataSource({
  type: 'mysql',
  driver: require('mysql2-keepalive-pool'),
  poolSize: 4,
  replication: {
    master: {},
    slaves: [{}, {}],
  },
  entities: [Note],
  synchronize: true, // creates the table, on the master
  // Options of this pool pass through TypeORM's `extra`, for every node.
  extra: {},
});

/** Runs `fn` on a query runner of `mode` ('master' or 'slave'); returns its result and node. */
async function on(mode, fn) {
  const runner = dataSource.createQueryRunner(mode);
  try {
    const connection = await runner.connect();
    return { node: connection._clusterId, value: await fn(runner) };
  } finally {
    await runner.release();
  }
}

async function round(n) {
  // Reads on the slaves, a few at once so that several connections are in use.
  const reads = await Promise.all(
    [1, 2, 3].map((i) =>
      on('slave', (runner) => runner.query('SELECT ? + 0 AS v, CONNECTION_ID() AS cid', [i])),
    ),
  );
  const values = reads.map((r) => Number(r.value[0].v));

  // Writes on the master: TypeORM's transactions always run there.
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
  const written = await on('master', (runner) =>
    runner.query(`SELECT COUNT(*) AS c FROM ${Note.options.tableName}`),
  );
  // The same server stands behind every node here, so a slave sees the master's rows at once.
  const counted = await on('slave', (runner) =>
    runner.query(`SELECT COUNT(*) AS c FROM ${Note.options.tableName}`),
  );
  const count = Number(counted.value[0].c);
  console.log(`typeorm replication round ${n}: ${count} notes`);
  return {
    values,
    rolledBack,
    count,
    readNodes: [...reads.map((r) => r.node), counted.node],
    writeNode: written.node,
  };
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
    // TypeORM keeps the cluster it created on its driver; stats() is per node.
    const nodes = dataSource.driver.poolCluster.stats();
    const stats = { created: 0, validations: 0, hedgeWins: 0, dead: {} };
    for (const s of Object.values(nodes)) {
      stats.created += s.created;
      stats.validations += s.validations;
      stats.hedgeWins += s.hedgeWins;
      for (const [reason, count] of Object.entries(s.dead)) {
        stats.dead[reason] = (stats.dead[reason] ?? 0) + count;
      }
    }
    console.log(JSON.stringify({ example: 'typeorm-replication', rounds, stats, nodes }));
  } finally {
    await dataSource.destroy(); // ends the cluster
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
