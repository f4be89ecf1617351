// @ts-check
// Every ipcMain channel against the real sidecar, called the way the app's preload calls it, with
// events reaching the (live) windows and errors rejecting with the sidecar's message.
'use strict';

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { after, before, test } = require('node:test');
const { createSidecarBridge, IPC_CHANNELS, SidecarRpcError } = require('..');
const {
  FakeIpcMain,
  FakeWindow,
  fixture,
  nextEvent,
  recordingLogger,
  sidecarCommand,
  tempPaths,
  within,
} = require('./support/harness');

// The first app's queues, and the later one's gps-enrichment.
const QUEUES = ['exiftool', 'thumbnail', 'ffprobe', 'video-proxy', 'live-photo', 'bagit', 'location-stats', 'gps-enrichment'];
const ISO_DATE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/** @type {{after: (fn: () => void) => void}} */
const cleanup = { after };
const paths = tempPaths(cleanup);
const ipc = new FakeIpcMain();
const live = new FakeWindow();
const closed = Object.assign(new FakeWindow(), { destroyed: true });
const closing = Object.assign(new FakeWindow(), { contentsDestroyed: true });
const logger = recordingLogger();
/** @type {ReturnType<typeof createSidecarBridge>} */
let bridge;
/** @type {import('../types/protocol').SidecarReadyNotification} */
let ready;
/** @type {{locid: string, loc12: string, address_state: string, type: string, slocnam: string}} */
let location;

before(async () => {
  bridge = createSidecarBridge({
    ...sidecarCommand(paths),
    ipcMain: ipc,
    getWindows: () => [closed, live, closing],
    logger,
  });
  ready = await within(bridge.ready, 20_000, 'sidecar:ready');
  location = fixture('location', paths.db);
});

after(() => bridge?.dispose());

test('one handler per import:v2:* and jobs:* channel, registered at once', () => {
  assert.deepEqual([...ipc.handlers.keys()].sort(), [...IPC_CHANNELS].sort());
  assert.ok(!ipc.handlers.has('media:import:cancel'), 'media:import:cancel only when asked for');
  assert.equal(ready.protocolVersion, '1.0.0');
  assert.deepEqual(live.received('sidecar:ready'), [ready]);
});

test('import:v2:start imports real files; the live window gets progress and complete', async () => {
  fixture('jpeg', path.join(paths.source, 'IMG_0001.jpg'), '1');
  fixture('jpeg', path.join(paths.source, 'IMG_0002.jpg'), '2');
  fs.writeFileSync(path.join(paths.source, 'notes.txt'), 'a field note\n');
  const completeEvent = nextEvent(bridge, 'import:v2:complete');

  // The preload's shape: one options object, nullable fields included.
  const result = await within(
    ipc.invoke('import:v2:start', { paths: [paths.source], ...location }),
    30_000,
    'import:v2:start',
  );
  assert.equal(result.status, 'completed', JSON.stringify(result));
  assert.deepEqual(result.scanResult, { totalFiles: 3, totalBytes: result.scanResult.totalBytes, skipped: 0 });
  assert.equal(result.finalizationResult.totalFinalized, 3);
  assert.deepEqual(result.errors, []);
  assert.match(result.startedAt, ISO_DATE);

  const complete = await live.waitFor('import:v2:complete', (event) => event.sessionId === result.sessionId);
  assert.equal(complete.totalImported, 3);
  assert.equal(complete.status, 'completed');
  assert.deepEqual(await completeEvent, complete, 'on() listeners see what windows see');
  const progress = live.received('import:v2:progress').filter((event) => event.sessionId === result.sessionId);
  assert.ok(progress.length >= 1);
  assert.equal(progress.at(-1).percent, 100);
  assert.equal(progress.at(-1).totalSteps, 5);

  // Background jobs report through the same path: exiftool's metadata of an imported JPEG.
  const metadata = await live.waitFor('asset:metadata-complete', (event) => event.mediaType === 'image', 20_000);
  assert.match(metadata.hash, /^[0-9a-f]{16}$/);

  assert.deepEqual(closed.sent, [], 'a destroyed window gets nothing');
  assert.deepEqual(closing.sent, [], 'a window whose webContents are destroyed gets nothing');
});

test('import:v2:status, import:v2:resumable', async () => {
  const status = await ipc.invoke('import:v2:status');
  assert.equal(status.status, 'idle');
  assert.equal(status.sessionId, null);
  assert.deepEqual(status.queued, []);
  assert.deepEqual(await ipc.invoke('import:v2:resumable'), []);
});

test('import:v2:cancel of an unknown session', async () => {
  assert.deepEqual(await ipc.invoke('import:v2:cancel', 'no-such-session'), {
    cancelled: false,
    reason: 'No active import found',
  });
});

test('import:v2:resume of an unknown session rejects with the sidecar’s message', async () => {
  await assert.rejects(ipc.invoke('import:v2:resume', 'no-such-session'), (error) => {
    assert.ok(error instanceof SidecarRpcError);
    assert.equal(error.message, 'Session not found');
    assert.equal(error.code, 1003);
    assert.equal(/** @type {any} */ (error.data).kind, 'session_not_found');
    return true;
  });
});

test('jobs:status counts every queue', async () => {
  const status = await ipc.invoke('jobs:status');
  assert.deepEqual(Object.keys(status).sort(), [...QUEUES].sort());
  for (const queue of QUEUES) {
    assert.deepEqual(Object.keys(status[queue]).sort(), ['completed', 'dead', 'failed', 'pending', 'processing']);
  }
});

test('jobs:deadLetter with and without a queue, jobs:retry, jobs:acknowledge', async () => {
  const older = fixture('dead-letter', paths.db, 'thumbnail', '2025-12-01T10:00:00.000Z');
  const newer = fixture('dead-letter', paths.db, 'exiftool', '2025-12-02T10:00:00.000Z');

  const all = await ipc.invoke('jobs:deadLetter');
  const planted = all.filter((/** @type {{id: number}} */ entry) => entry.id === older || entry.id === newer);
  assert.deepEqual(planted.map((/** @type {{id: number}} */ entry) => entry.id), [newer, older], 'newest first');
  assert.equal(planted[0].failedAt, '2025-12-02T10:00:00.000Z');
  assert.equal(planted[0].acknowledged, false);
  // The renderer's `undefined` arrives as null, which means every queue too.
  assert.deepEqual(await ipc.invoke('jobs:deadLetter', undefined), all);
  const thumbnails = await ipc.invoke('jobs:deadLetter', 'thumbnail');
  assert.ok(thumbnails.every((/** @type {{queue: string}} */ entry) => entry.queue === 'thumbnail'));
  assert.ok(thumbnails.some((/** @type {{id: number}} */ entry) => entry.id === older));

  const retried = await ipc.invoke('jobs:retry', { deadLetterId: older });
  assert.equal(retried.success, true);
  assert.equal(typeof retried.newJobId, 'string');
  assert.deepEqual(await ipc.invoke('jobs:retry', { deadLetterId: 999 }), { success: false, newJobId: null });

  // retry acknowledged `older`: only `newer` changes now, and nothing the second time.
  assert.deepEqual(await ipc.invoke('jobs:acknowledge', [older, newer]), { acknowledged: 1 });
  assert.deepEqual(await ipc.invoke('jobs:acknowledge', [older, newer]), { acknowledged: 0 });
  const ack = await ipc.invoke('jobs:acknowledge', [1, 2]);
  assert.ok(Number.isInteger(ack.acknowledged) && ack.acknowledged >= 0);
});

test('jobs:clearCompleted with the default age and with 0', async () => {
  // Every job here finished moments ago: none is older than the default 24 h.
  assert.deepEqual(await ipc.invoke('jobs:clearCompleted'), { cleared: 0 });
  // With 0, every completed job goes (background jobs of the import may still be finishing, so
  // the count is whatever had completed by then).
  const cleared = await ipc.invoke('jobs:clearCompleted', 0);
  assert.ok(Number.isInteger(cleared.cleared) && cleared.cleared >= 0, JSON.stringify(cleared));
});

test('bad params reject with every issue named in the message (all the renderer sees) and in data', async () => {
  await assert.rejects(ipc.invoke('import:v2:start', { paths: [''], locid: 'not-a-uuid' }), (error) => {
    assert.ok(error instanceof SidecarRpcError);
    assert.equal(error.code, -32602);
    const issues = /** @type {{issues: Array<{path: string, message: string}>}} */ (error.data).issues;
    const where = issues.map((issue) => issue.path);
    assert.ok(where.includes('/0/paths/0'), JSON.stringify(issues));
    assert.ok(where.includes('/0/locid'), JSON.stringify(issues));
    const named = issues.map((issue) => `${issue.path}: ${issue.message}`).join('; ');
    assert.equal(error.message, `Invalid params: ${named}`);
    assert.match(error.message, /\/0\/locid: 'not-a-uuid'/);
    return true;
  });
  await assert.rejects(ipc.invoke('jobs:clearCompleted', -1), { message: /^Invalid params: \/0: -1 /, code: -32602 });
  // Too many arguments: the issue is the params array's own, its path "".
  await assert.rejects(ipc.invoke('import:v2:cancel', 'a', 'b'), {
    message: /^Invalid params: \(params\): .*'b'/,
    code: -32602,
  });
});

test('an unknown location rejects with the sidecar’s message', async () => {
  const unknown = { ...location, locid: '00000000-0000-4000-8000-000000000000' };
  await assert.rejects(ipc.invoke('import:v2:start', { paths: [paths.source], ...unknown }), {
    name: 'SidecarRpcError',
    message: 'Location not found',
    code: 1002,
  });
});

test('request() reaches the methods the renderer cannot', async () => {
  const info = await bridge.request('sidecar:info');
  assert.equal(info.pid, ready.pid);
  assert.equal(info.pid, bridge.pid);
  assert.equal(info.dbPath, paths.db);
  assert.equal(info.archivePath, paths.archive);
});

test('the sidecar’s stderr JSON lines reach the logger with their level and action', () => {
  const sidecarReady = logger.entries.find((entry) => entry.fields.action === 'sidecar.ready');
  assert.ok(sidecarReady, 'the sidecar logs sidecar.ready');
  assert.equal(sidecarReady.level, 'info');
  assert.equal(sidecarReady.fields.source, 'sidecar');
  assert.equal(sidecarReady.fields.pid, ready.pid);
  // The sidecar may log errors of its own (a planted dead-letter job retried above dies again);
  // the bridge itself must have had none.
  const problems = logger.entries.filter((entry) => entry.level === 'error' && entry.fields.source !== 'sidecar');
  assert.deepEqual(problems, []);
});
