/**
 * The pre-send half of the retry rule: which connection states prove that a command given now
 * could not reach the server (isUnusable), and what a hard close tells commands still waiting.
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { test } from 'node:test';
import type { PoolConnection } from 'mysql2';
import { closeConnection, isUnusable } from '../../src/health.js';

function closedState(): void {}

function stub(extra: Record<string, unknown> = {}): PoolConnection & Record<string, unknown> {
  const conn = Object.assign(new EventEmitter(), {
    addCommand: () => {},
    _addCommandClosedState: closedState,
    stream: { destroyed: false, readableEnded: false, writableEnded: false, destroy() {} },
    destroy() {},
    ...extra,
  });
  return conn as unknown as PoolConnection & Record<string, unknown>;
}

test('a healthy connection is usable', () => {
  assert.equal(isUnusable(stub()), false);
});

test('every closed state is seen', () => {
  const cases: Record<string, Record<string, unknown>> = {
    'fatal error': { _fatalError: new Error('x') },
    'protocol error': { _protocolError: new Error('x') },
    closing: { _closing: true },
    "mysql2's closed-state addCommand": { addCommand: closedState },
    'socket destroyed': { stream: { destroyed: true } },
    'FIN received': { stream: { destroyed: false, readableEnded: true } },
    'our side ended': { stream: { destroyed: false, writableEnded: true } },
  };
  for (const [what, extra] of Object.entries(cases)) {
    assert.equal(isUnusable(stub(extra)), true, what);
  }
});

test('an object without mysql2 internals is not mistaken for a closed one', () => {
  const bare = Object.assign(new EventEmitter(), {}) as unknown as PoolConnection;
  assert.equal(isUnusable(bare), false);
});

function pendingStub(extra: Record<string, unknown> = {}): {
  conn: PoolConnection & Record<string, unknown>;
  notified: Error[];
} {
  const notified: Error[] = [];
  const conn = stub({
    _command: {},
    _commands: [],
    _notifyError: (err: Error) => notified.push(err),
    ...extra,
  });
  return { conn, notified };
}

test('a hard close gives a command still in flight an error instead of silence', () => {
  const { conn, notified } = pendingStub();
  closeConnection(conn, false, 0);
  assert.equal(notified.length, 1);
  assert.equal((notified[0] as Error & { code?: string }).code, 'POOL_CLOSED');
  assert.equal((notified[0] as Error & { fatal?: boolean }).fatal, true);
});

test("when the server closed the socket, the command gets mysql2's own PROTOCOL_CONNECTION_LOST", () => {
  const { conn, notified } = pendingStub({
    stream: { destroyed: false, readableEnded: true, destroy() {} },
  });
  closeConnection(conn, true, 1000);
  assert.equal((notified[0] as Error & { code?: string }).code, 'PROTOCOL_CONNECTION_LOST');
  assert.equal(notified[0]!.message, 'Connection lost: The server closed the connection.');
});

test('nothing pending, or mysql2 already reported a fatal error: nobody is notified twice', () => {
  const idle = pendingStub({ _command: null });
  closeConnection(idle.conn, false, 0);
  assert.equal(idle.notified.length, 0);
  const failed = pendingStub({ _fatalError: new Error('ETIMEDOUT') });
  closeConnection(failed.conn, false, 0);
  assert.equal(failed.notified.length, 0);
});
