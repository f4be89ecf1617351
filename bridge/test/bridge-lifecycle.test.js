// @ts-check
// Restarts, giving up and disposal, against the real sidecar (and, where the real one is too
// well-behaved, a stand-in that will not stop or will not start).
'use strict';

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { test } = require('node:test');
const { createSidecarBridge, IPC_CHANNELS, SidecarExitedError } = require('..');
const {
  FakeIpcMain,
  FakeWindow,
  fixture,
  groupAlive,
  isAlive,
  nextEvent,
  recordingLogger,
  sidecarCommand,
  tempPaths,
  waitUntil,
  within,
} = require('./support/harness');

/**
 * @param {ReturnType<typeof recordingLogger>} logger
 * @param {string} action
 */
const logged = (logger, action) => logger.entries.filter((entry) => entry.fields.action === action);

test('a SIGKILLed sidecar: in-flight calls reject at once, calls made meanwhile wait, a new one takes over and resumes the import', async (t) => {
  const paths = tempPaths(t);
  // Enough bytes that the import is still hashing when the test stops it.
  for (let i = 0; i < 400; i += 1) {
    fs.writeFileSync(path.join(paths.source, `page-${String(i).padStart(4, '0')}.txt`), crypto.randomBytes(128 * 1024));
  }
  const ipc = new FakeIpcMain();
  const window = new FakeWindow();
  const logger = recordingLogger();
  const bridge = createSidecarBridge({ ...sidecarCommand(paths), ipcMain: ipc, getWindows: () => [window], logger });
  t.after(() => bridge.dispose());
  const first = await within(bridge.ready, 20_000, 'the first sidecar:ready');
  const location = fixture('location', paths.db);

  const importing = ipc.invoke('import:v2:start', { paths: [paths.source], ...location });
  importing.catch(() => {}); // asserted below
  const hashing = await window.waitFor('import:v2:progress', (event) => event.step >= 2, 20_000);
  // Freeze it first, so no answer can slip out before the kill: both calls are surely in flight.
  process.kill(first.pid, 'SIGSTOP');
  const status = ipc.invoke('jobs:status');
  status.catch(() => {});
  const replaced = nextEvent(bridge, 'sidecar:ready', (event) => event.pid !== first.pid, 20_000);

  const killedAt = Date.now();
  process.kill(first.pid, 'SIGKILL');
  for (const call of [importing, status]) {
    await assert.rejects(within(call, 1_000, 'the in-flight call to reject'), (error) => {
      assert.ok(error instanceof SidecarExitedError);
      assert.equal(error.signal, 'SIGKILL');
      return true;
    });
  }
  const rejectedAfterMs = Date.now() - killedAt;
  assert.ok(rejectedAfterMs < 1_000, `in-flight calls rejected after ${rejectedAfterMs} ms`);

  // Made while the sidecar is down: waits for its replacement instead of failing.
  const meanwhile = ipc.invoke('import:v2:resumable');
  const second = await replaced;
  const info = await bridge.request('sidecar:info');
  assert.notEqual(info.pid, first.pid);
  assert.equal(info.pid, second.pid);
  assert.equal(isAlive(first.pid), false);
  // The killed sidecar's pool workers would live on; the bridge stops its whole process group.
  await waitUntil(() => !groupAlive(first.pid), 5_000, 'the killed sidecar’s process group to empty');

  const resumable = await within(meanwhile, 5_000, 'the call made while restarting');
  const session = resumable.find((/** @type {{sessionId: string}} */ entry) => entry.sessionId === hashing.sessionId);
  assert.ok(session, `the killed import is resumable: ${JSON.stringify(resumable)}`);
  const resumed = await within(ipc.invoke('import:v2:resume', hashing.sessionId), 30_000, 'import:v2:resume');
  assert.equal(resumed.status, 'completed', JSON.stringify(resumed));
  assert.equal(resumed.finalizationResult.totalFinalized, 400);
  await window.waitFor('import:v2:complete', (event) => event.sessionId === hashing.sessionId);

  const [exit] = logged(logger, 'bridge.exit');
  assert.equal(exit.level, 'error');
  assert.equal(exit.fields.signal, 'SIGKILL');
  assert.equal(logged(logger, 'bridge.restart').length, 1);
});

test('gives up after five crashes within a minute, and says so', async (t) => {
  const ipc = new FakeIpcMain();
  const logger = recordingLogger();
  const bridge = createSidecarBridge({
    command: process.execPath,
    args: ['-e', 'process.exit(3)'],
    ipcMain: ipc,
    logger,
    mapMediaImportCancel: true,
  });
  t.after(() => bridge.dispose());
  const gaveUp = nextEvent(bridge, 'bridge:gave-up', undefined, 20_000);
  // Made before any sidecar was ready: waits through the restarts, then gets the reason.
  const early = bridge.request('jobs:status');

  await assert.rejects(within(bridge.ready, 20_000, 'ready to reject'), { code: 'SIDECAR_GAVE_UP' });
  await assert.rejects(early, { code: 'SIDECAR_GAVE_UP', message: /crashed 5 times within 60 s/ });
  const event = await gaveUp;
  assert.equal(event.crashes, 5);

  const exits = logged(logger, 'bridge.exit');
  assert.equal(exits.length, 5);
  assert.ok(exits.every((entry) => entry.fields.code === 3));
  const delays = logged(logger, 'bridge.restart').map((entry) => entry.fields.delayMs);
  assert.deepEqual(delays, [200, 400, 800, 1600], 'exponential backoff');
  assert.equal(logged(logger, 'bridge.gave_up')[0].level, 'error');

  // The renderer still gets an answer: the reason, not "no handler registered".
  await assert.rejects(ipc.invoke('jobs:status'), { message: /not restarting it/ });
  await assert.rejects(ipc.invoke('media:import:cancel', 'session'), { message: /not restarting it/ });
  await bridge.dispose();
  assert.equal(ipc.handlers.size, 0);
});

test('a missing executable counts as a crash like any other', async (t) => {
  const logger = recordingLogger();
  const bridge = createSidecarBridge({
    command: path.join(tempPaths(t).dir, 'no-such-sidecar'),
    logger,
    restart: { initialDelayMs: 1, maxCrashes: 2 },
  });
  t.after(() => bridge.dispose());
  await assert.rejects(within(bridge.ready, 10_000, 'ready to reject'), { code: 'SIDECAR_GAVE_UP' });
  assert.match(String(logged(logger, 'bridge.exit')[0].fields.error), /ENOENT/);
});

test('dispose(): graceful, leaves no process behind, removes the handlers, idempotent, no restart', async (t) => {
  const paths = tempPaths(t);
  const ipc = new FakeIpcMain();
  const logger = recordingLogger();
  const bridge = createSidecarBridge({ ...sidecarCommand(paths), ipcMain: ipc, logger });
  // Invoked before the sidecar is ready: waits for it.
  const early = ipc.invoke('import:v2:status');
  const { pid } = await within(bridge.ready, 20_000, 'sidecar:ready');
  assert.equal((await early).status, 'idle');
  await bridge.request('sidecar:info'); // the sidecar has started its worker pool by now

  const disposing = bridge.dispose();
  assert.equal(bridge.dispose(), disposing, 'idempotent');
  await assert.rejects(bridge.request('jobs:status'), { code: 'SIDECAR_DISPOSED' });
  await within(disposing, 15_000, 'dispose()');

  assert.equal(isAlive(pid), false, 'the sidecar is gone');
  await waitUntil(() => !groupAlive(pid), 5_000, 'the sidecar’s workers to be gone');
  assert.equal(ipc.handlers.size, 0);
  assert.deepEqual([...ipc.removed].sort(), [...IPC_CHANNELS].sort());
  await assert.rejects(ipc.invoke('jobs:status'), /No handler registered/);
  await assert.rejects(bridge.ready, { code: 'SIDECAR_DISPOSED' });

  const [exit] = logged(logger, 'bridge.exit');
  assert.deepEqual([exit.level, exit.fields.code, exit.fields.signal], ['info', 0, null], 'a clean exit');
  assert.deepEqual(logged(logger, 'bridge.sigterm'), [], 'the sidecar shut down its own way, unsignalled');
  assert.equal(logged(logger, 'bridge.spawn').length, 1, 'no restart after dispose');
  assert.deepEqual(logged(logger, 'bridge.restart'), []);
  await bridge.dispose();
});

test('dispose() escalates to SIGTERM, then SIGKILL, for a sidecar that will not stop', async (t) => {
  // A stand-in that says it is ready, then ignores sidecar:shutdown, stdin EOF and SIGTERM.
  const stubborn = `
    process.on('SIGTERM', () => {});
    process.stdin.resume();
    process.stdout.write(JSON.stringify({ jsonrpc: '2.0', method: 'sidecar:ready',
      params: { version: '0', protocolVersion: '1.0.0', pid: process.pid } }) + '\\n');
    setInterval(() => {}, 1000);`;
  const logger = recordingLogger();
  const bridge = createSidecarBridge({
    command: process.execPath,
    args: ['-e', stubborn],
    logger,
    shutdownTimeoutMs: 300,
    terminateTimeoutMs: 300,
  });
  t.after(() => bridge.dispose());
  const { pid } = await within(bridge.ready, 10_000, 'sidecar:ready');
  const unanswered = bridge.request('jobs:status');

  await within(bridge.dispose(), 10_000, 'dispose()');
  await assert.rejects(unanswered, { name: 'SidecarExitedError', signal: 'SIGKILL' });
  assert.equal(isAlive(pid), false);
  assert.equal(logged(logger, 'bridge.sigterm').length, 1);
  assert.equal(logged(logger, 'bridge.sigkill').length, 1);
  assert.deepEqual(logged(logger, 'bridge.restart'), []);
});
