// @ts-check
// The JSON-RPC client over in-memory streams: matching, notifications, errors, backpressure.
'use strict';

const assert = require('node:assert/strict');
const { PassThrough, Writable } = require('node:stream');
const { test } = require('node:test');
const { JsonRpcConnection } = require('../lib/json-rpc-connection');
const { SidecarRpcError, SidecarExitedError } = require('../lib/errors');
const { recordingLogger } = require('./support/harness');

function setup({ highWaterMark = 16 * 1024 } = {}) {
  const fromPeer = new PassThrough();
  /** @type {string[]} */
  const written = [];
  /** @type {Array<() => void>} */
  const heldCallbacks = [];
  let hold = false;
  // A peer that can stop reading: while `hold` is set, writes stay unacknowledged.
  const toPeer = new Writable({
    highWaterMark,
    write(chunk, _encoding, callback) {
      written.push(chunk.toString());
      if (hold) heldCallbacks.push(callback);
      else callback();
    },
  });
  /** @type {Array<[string, unknown]>} */
  const notifications = [];
  const logger = recordingLogger();
  const connection = new JsonRpcConnection({
    readable: fromPeer,
    writable: toPeer,
    logger,
    onNotification: (method, params) => notifications.push([method, params]),
  });
  const sent = () => written.join('').split('\n').filter(Boolean).map((line) => JSON.parse(line));
  /** @param {unknown} message */
  const reply = (message) => fromPeer.write(`${JSON.stringify(message)}\n`);
  return {
    connection,
    toPeer,
    sent,
    reply,
    notifications,
    logger,
    fromPeer,
    /** @param {boolean} value */
    hold(value) {
      hold = value;
      if (!value) for (const callback of heldCallbacks.splice(0)) callback();
    },
  };
}

test('requests carry positional params; responses match by id in any order', async () => {
  const peer = setup();
  const first = peer.connection.request('jobs:deadLetter', ['thumbnail']);
  const second = peer.connection.request('import:v2:status', []);
  const [a, b] = peer.sent();
  assert.deepEqual(a, { jsonrpc: '2.0', id: a.id, method: 'jobs:deadLetter', params: ['thumbnail'] });
  assert.equal(b.method, 'import:v2:status');
  peer.reply({ jsonrpc: '2.0', id: b.id, result: { status: 'idle' } });
  peer.reply({ jsonrpc: '2.0', id: a.id, result: [] });
  assert.deepEqual(await second, { status: 'idle' });
  assert.deepEqual(await first, []);
  assert.equal(peer.connection.pendingCount, 0);
});

test('errors reject with the sidecar’s message, code and data', async () => {
  const peer = setup();
  const call = peer.connection.request('import:v2:resume', ['nope']);
  const data = { kind: 'session_not_found' };
  peer.reply({ jsonrpc: '2.0', id: peer.sent()[0].id, error: { code: 1003, message: 'Session not found', data } });
  await assert.rejects(call, (error) => {
    assert.ok(error instanceof SidecarRpcError);
    assert.equal(error.message, 'Session not found');
    assert.equal(error.code, 1003);
    assert.deepEqual(error.data, data);
    assert.equal(error.method, 'import:v2:resume');
    return true;
  });
});

test('invalid params: the message names every problem (the renderer sees only the message); data as sent', async () => {
  const peer = setup();
  const call = peer.connection.request('import:v2:start', [{ paths: [], locid: 'x' }, 2]);
  const data = {
    issues: [
      { path: '', message: '[{...}, 2] is too long' },
      { path: '/0/locid', message: "'x' does not match '^[0-9a-f]{16}$'" },
      { path: '/0/paths', message: '[] should be non-empty' },
    ],
  };
  peer.reply({ jsonrpc: '2.0', id: peer.sent()[0].id, error: { code: -32602, message: 'Invalid params', data } });
  await assert.rejects(call, (error) => {
    assert.ok(error instanceof SidecarRpcError);
    assert.equal(
      error.message,
      "Invalid params: (params): [{...}, 2] is too long; /0/locid: 'x' does not match '^[0-9a-f]{16}$'; " +
        '/0/paths: [] should be non-empty',
    );
    assert.equal(error.code, -32602);
    assert.deepEqual(error.data, data);
    return true;
  });
});

test('invalid params: at most 20 issues in the message, each cut at 300 characters', async () => {
  const peer = setup();
  const call = peer.connection.request('import:v2:start', [{}]);
  const issues = Array.from({ length: 25 }, (_, i) => ({
    path: `/0/paths/${i}`,
    message: 'x'.repeat(i === 0 ? 1000 : 3),
  }));
  const error = { code: -32602, message: 'Invalid params', data: { issues } };
  peer.reply({ jsonrpc: '2.0', id: peer.sent()[0].id, error });
  await assert.rejects(call, (error) => {
    assert.ok(error instanceof SidecarRpcError);
    const parts = error.message.replace(/^Invalid params: /, '').split('; ');
    assert.equal(parts.length, 21);
    assert.equal(parts[0], `/0/paths/0: ${'x'.repeat(299)}…`);
    assert.equal(parts[19], '/0/paths/19: xxx');
    assert.equal(parts[20], 'and 5 more');
    assert.equal(/** @type {any} */ (error.data).issues.length, 25);
    return true;
  });
});

test('other errors, and invalid params without issues, keep the sidecar’s message as is', async () => {
  const peer = setup();
  const calls = [
    peer.connection.request('jobs:clearCompleted', [-1]),
    peer.connection.request('import:v2:start', [{}]),
  ];
  const [a, b] = peer.sent();
  const issues = [{ path: '/0', message: 'ignored' }];
  peer.reply({ jsonrpc: '2.0', id: a.id, error: { code: -32602, message: 'Invalid params' } });
  const data = { kind: 'location_not_found', issues };
  peer.reply({ jsonrpc: '2.0', id: b.id, error: { code: 1002, message: 'Location not found', data } });
  await assert.rejects(calls[0], { message: 'Invalid params', code: -32602 });
  await assert.rejects(calls[1], { message: 'Location not found', code: 1002 });
});

test('notifications, batches and junk lines', async () => {
  const peer = setup();
  const call = peer.connection.request('jobs:status', []);
  const id = peer.sent()[0].id;
  peer.fromPeer.write('not json\n\n');
  peer.reply([
    { jsonrpc: '2.0', method: 'jobs:progress', params: { queue: 'bagit', jobId: 'j', progress: 50 } },
    { jsonrpc: '2.0', id, result: {} },
  ]);
  peer.reply({ jsonrpc: '2.0', id: 999, result: {} });
  assert.deepEqual(await call, {});
  assert.deepEqual(peer.notifications, [['jobs:progress', { queue: 'bagit', jobId: 'j', progress: 50 }]]);
  const actions = peer.logger.entries.map((entry) => entry.fields.action);
  assert.deepEqual(actions, ['bridge.bad_line', 'bridge.unmatched_response']);
});

test('a request from the peer gets Method not found, so it does not wait forever', async () => {
  const peer = setup();
  peer.reply({ jsonrpc: '2.0', id: 'x', method: 'app:whatever', params: [] });
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(peer.sent(), [{ jsonrpc: '2.0', id: 'x', error: { code: -32601, message: 'Method not found' } }]);
});

test('writes stop while the peer is not reading and resume on drain, in order', async () => {
  const peer = setup({ highWaterMark: 64 });
  peer.hold(true);
  const calls = [];
  for (let i = 0; i < 50; i += 1) calls.push(peer.connection.request('jobs:retry', [{ deadLetterId: i + 1 }]));
  // The first write fills the stream past its mark; everything after waits in the bridge.
  assert.equal(peer.sent().length, 1);
  assert.ok(peer.toPeer.writableLength <= 64 + 100, `stream buffered ${peer.toPeer.writableLength}`);
  peer.hold(false);
  await new Promise((resolve) => setImmediate(resolve));
  // Each drain lets one more line through until the peer has them all.
  for (let guard = 0; peer.sent().length < 50 && guard < 100; guard += 1) {
    peer.hold(false);
    await new Promise((resolve) => setImmediate(resolve));
  }
  const sent = peer.sent();
  assert.equal(sent.length, 50);
  assert.deepEqual(
    sent.map((message) => message.params[0].deadLetterId),
    Array.from({ length: 50 }, (_, i) => i + 1),
  );
  for (const message of sent) peer.reply({ jsonrpc: '2.0', id: message.id, result: { success: false, newJobId: null } });
  await Promise.all(calls);
});

test('a request over the 16 MiB cap is refused locally instead of being lost', async () => {
  const peer = setup();
  const big = 'x'.repeat(16 * 1024 * 1024);
  await assert.rejects(peer.connection.request('import:v2:start', [{ paths: [big] }]), /16 MiB/);
  assert.equal(peer.sent().length, 0);
});

test('close() rejects pending calls at once and every later call', async () => {
  const peer = setup();
  const call = peer.connection.request('import:v2:start', [{}]);
  peer.connection.close((method) => new SidecarExitedError(method, { code: null, signal: 'SIGKILL' }));
  await assert.rejects(call, { name: 'SidecarExitedError', message: /signal SIGKILL.*import:v2:start/ });
  await assert.rejects(peer.connection.request('jobs:status', []), { code: 'SIDECAR_EXITED' });
});
