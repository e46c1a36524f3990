/**
 * Where the tests find a real server: TEST_MYSQL_URL if set, else the local MariaDB on
 * 127.0.0.1:3306 (root, empty password, database `test`).
 */
import mysql from 'mysql2';

export interface DbOptions {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
}

export function dbOptions(url: string | undefined = process.env.TEST_MYSQL_URL): DbOptions {
  if (url) {
    const u = new URL(url);
    return {
      host: u.hostname,
      port: Number(u.port || 3306),
      user: decodeURIComponent(u.username),
      password: decodeURIComponent(u.password),
      database: u.pathname.slice(1) || 'test',
    };
  }
  return { host: '127.0.0.1', port: 3306, user: 'root', password: '', database: 'test' };
}

/** Runs one statement on a fresh, separate connection (for KILL, setup, inspection). */
export async function adminQuery<T = unknown>(sql: string, values?: unknown[]): Promise<T> {
  const conn = mysql.createConnection({ ...dbOptions() });
  try {
    return await new Promise<T>((resolve, reject) => {
      conn.query(sql, values, (err, rows) => (err ? reject(err) : resolve(rows as T)));
    });
  } finally {
    conn.destroy();
  }
}

/** Server thread ids currently connected as the test user, from the process list. */
export async function serverThreadIds(): Promise<number[]> {
  const rows = await adminQuery<Array<{ ID: number }>>(
    'SELECT ID FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID()',
  );
  return rows.map((r) => Number(r.ID));
}
