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
