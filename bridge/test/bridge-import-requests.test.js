// @ts-check
// import:v2:start with each app generation's own request objects, through the bridge's ipcMain
// stand-in, against the real sidecar: the rows carry the sub-location and attribution sent, bad
// requests name their problem in the message, a location gets GPS from its media, and the later
// app's cancel button (media:import:cancel, when mapped) cancels a running import.
'use strict';

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
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

/** @type {{after: (fn: () => void) => void}} */
const cleanup = { after };
const paths = tempPaths(cleanup);
const ipc = new FakeIpcMain();
const window = new FakeWindow();
/** @type {ReturnType<typeof createSidecarBridge>} */
let bridge;
/** A first-generation location: UUID id, `type`, loc12. */
/** @type {{locid: string, loc12: string, address_state: string, type: string, slocnam: string}} */
let firstGen;
/** A later-generation location: a 16-hex BLAKE3 id (its loc12, in the sidecar's table, its first 12). */
/** @type {{locid: string, loc12: string, address_state: string, type: string, slocnam: string}} */
let laterGen;
/** A sub-location of `laterGen`, 16-hex id as the later app issues them. */
/** @type {{subid: string, subnam: string}} */
let sub;

const hex16 = () => crypto.randomBytes(8).toString('hex');
let seed = 0;

/**
 * A source folder of `count` distinct JPEGs named `${prefix}_NNNN.jpg`; the first one GPS-tagged
 * when `gps` is given. Returns the folder and its files.
 * @param {string} prefix
 * @param {number} count
 * @param {[number, number]} [gps]
 */
function jpegs(prefix, count, gps) {
  const folder = path.join(paths.dir, prefix);
  fs.mkdirSync(folder);
  const files = [];
  for (let i = 1; i <= count; i += 1) {
    const file = path.join(folder, `${prefix}_${String(i).padStart(4, '0')}.jpg`);
    seed += 1;
    fixture('jpeg', file, String(seed), ...(gps && i === 1 ? gps.map(String) : []));
    files.push(file);
  }
  return { folder, files };
}

/**
 * The imported images whose original name starts with `prefix`, as the database holds them.
 * @param {string} prefix
 */
function imgs(prefix) {
  return fixture(
    'query',
    paths.db,
    'SELECT imgnamo, locid, subid, auth_imp, is_contributed, contribution_source FROM imgs' +
      ' WHERE imgnamo LIKE ? ORDER BY imgnamo',
    `${prefix}_%`,
  );
}

/**
 * An imgs row's [locid, subid, auth_imp, is_contributed, contribution_source].
 * @param {Record<string, unknown>} row
 */
const attribution = (row) => [row.locid, row.subid, row.auth_imp, row.is_contributed, row.contribution_source];

/**
 * Runs import:v2:start through the renderer's channel and asserts it completed.
 * @param {unknown} input the preload's one argument
 * @param {number} files how many files it brings
 */
async function importCompleted(input, files) {
  const result = await within(ipc.invoke('import:v2:start', input), 60_000, 'import:v2:start');
  assert.equal(result.status, 'completed', JSON.stringify(result));
  assert.equal(result.finalizationResult.totalFinalized, files, JSON.stringify(result));
  assert.deepEqual(result.errors, []);
  await window.waitFor('import:v2:complete', (event) => event.sessionId === result.sessionId);
  return result;
}

before(async () => {
  bridge = createSidecarBridge({
    ...sidecarCommand(paths),
    ipcMain: ipc,
    getWindows: () => [window],
    logger: recordingLogger(),
    mapMediaImportCancel: true,
  });
  await within(bridge.ready, 20_000, 'sidecar:ready');
  firstGen = fixture('location', paths.db);
  laterGen = fixture('location', paths.db, hex16());
  sub = fixture('sublocation', paths.db, laterGen.locid, hex16(), 'Boiler House');
});

after(() => bridge?.dispose());

test('the first generation’s request: {paths, locid (UUID), loc12, address_state, type, slocnam}', async () => {
  const { folder } = jpegs('FIRST', 2);
  // bizzlechizzle/au-archive@38845de: the preload passes the renderer's object as is
  // (packages/desktop/electron/preload/preload.cjs:527, importV2.start), and the app's handler took
  // exactly these keys (electron/main/ipc-handlers/import-v2.ts:58, ImportStartSchema).
  const input = {
    paths: [folder],
    locid: firstGen.locid,
    loc12: firstGen.loc12,
    address_state: firstGen.address_state,
    type: firstGen.type,
    slocnam: firstGen.slocnam,
  };
  await importCompleted(input, 2);
  const rows = imgs('FIRST');
  assert.equal(rows.length, 2);
  // No attribution sent: the importing user (settings.current_user), not contributed, no sub-location.
  for (const row of rows) {
    assert.deepEqual(attribution(row), [firstGen.locid, null, 'alice', 0, null]);
  }
});

test('the later generation’s request from a sub-location’s page: 16-hex ids, no loc12, category, subid, an external contributor', async () => {
  const { files } = jpegs('SUB', 2);
  // bizzlechizzle/abandoned-archive@dfc4679, packages/desktop/src/pages/LocationDetail.svelte
  // ~817-828 (importFilePaths): the keys and values it builds, here for a sub-location's page and
  // the attribution modal's "someone else → external" choice (confirmImport: author = the current
  // user, is_contributed 1, the typed source). `paths` are files: it expands folders first
  // (media.expandPaths). It JSON round-trips the object, so loc12 (undefined: the later app's
  // locations have none) is not sent at all.
  const built = {
    paths: files,
    locid: laterGen.locid, // location.locid
    loc12: undefined, // location.loc12
    address_state: 'NY', // location.address?.state || null
    category: 'Hospital', // location.category || null
    slocnam: sub.subnam, // currentSubLocation?.subnam || null
    subid: sub.subid, // subId || null
    auth_imp: 'alice', // author
    is_contributed: 1, // contributed
    contribution_source: 'Flickr: J. Doe', // source || null
  };
  const input = JSON.parse(JSON.stringify(built));
  assert.equal('loc12' in input, false);
  await importCompleted(input, 2);
  const rows = imgs('SUB');
  assert.equal(rows.length, 2);
  for (const row of rows) {
    assert.deepEqual(attribution(row), [laterGen.locid, sub.subid, 'alice', 1, 'Flickr: J. Doe']);
  }
});

test('the later generation’s request from the Imports page: type, subid null, another user as author; its GPS reaches the location', async () => {
  const { folder } = jpegs('HOST', 2, [42.6526, -73.7562]);
  const enriched = nextEvent(bridge, 'location:gps-enriched', (event) => event.locid === laterGen.locid, 60_000);
  // bizzlechizzle/abandoned-archive@dfc4679, packages/desktop/src/pages/Imports.svelte ~226-237
  // (importFilePaths), with the attribution modal's "another registered user" choice (author =
  // that user, is_contributed 0, no source). Passed to the preload as is: loc12 is undefined there
  // (the later app's locations have none) and drops out when the bridge writes JSON.
  const input = {
    paths: [folder],
    locid: laterGen.locid, // location.locid
    loc12: undefined, // location.loc12
    address_state: 'NY', // location.address_state || null
    type: 'Hospital', // location.type || null
    slocnam: null, // location.slocnam || null
    subid: null, // "Imports page doesn't support sub-location selection"
    auth_imp: 'bob', // author
    is_contributed: 0, // contributed
    contribution_source: null, // source || null
  };
  await importCompleted(input, 2);
  const rows = imgs('HOST');
  assert.equal(rows.length, 2);
  for (const row of rows) {
    assert.deepEqual(attribution(row), [laterGen.locid, null, 'bob', 0, null]);
  }

  // The location had no coordinates: it takes the GPS-tagged image's, and every window hears it
  // (the later app's Atlas and location page listen for {locid, lat, lng}).
  const event = await enriched;
  assert.deepEqual(
    { ...event, lat: Math.round(event.lat * 1e4) / 1e4, lng: Math.round(event.lng * 1e4) / 1e4 },
    { locid: laterGen.locid, lat: 42.6526, lng: -73.7562, source: 'image' },
  );
  assert.deepEqual(window.received('location:gps-enriched').at(-1), event);
  const sql = 'SELECT gps_lat, gps_lng, gps_source FROM locs WHERE locid = ?';
  const [loc] = fixture('query', paths.db, sql, laterGen.locid);
  assert.deepEqual(loc, { gps_lat: event.lat, gps_lng: event.lng, gps_source: 'media_gps' });
});

test('unknown keys are ignored', async () => {
  const { folder } = jpegs('EXTRA', 1);
  await importCompleted({ paths: [folder], locid: firstGen.locid, importedFrom: 'test', options: { dryRun: true } }, 1);
  assert.equal(imgs('EXTRA').length, 1);
});

test('an invalid request rejects with a message naming the problem’s path', async () => {
  const { folder } = jpegs('BAD', 1);
  // Wrong types: every problem in the message, the issues in data as sent.
  const wrong = { paths: [folder], locid: 'LOC-1', is_contributed: 2, subid: 'Boiler House' };
  await assert.rejects(ipc.invoke('import:v2:start', wrong), (error) => {
    assert.ok(error instanceof SidecarRpcError);
    assert.equal(error.code, -32602);
    assert.match(error.message, /^Invalid params: /);
    for (const where of ['/0/is_contributed', '/0/locid', '/0/subid']) {
      assert.match(error.message, new RegExp(`${where}: `), error.message);
    }
    const issues = /** @type {{issues: Array<{path: string}>}} */ (error.data).issues;
    assert.deepEqual(issues.map((issue) => issue.path).sort(), ['/0/is_contributed', '/0/locid', '/0/subid']);
    return true;
  });
  // Well-formed, but not a sub-location of that location (it is the later one's).
  const elsewhere = { paths: [folder], locid: firstGen.locid, subid: sub.subid };
  await assert.rejects(ipc.invoke('import:v2:start', elsewhere), (error) => {
    assert.ok(error instanceof SidecarRpcError);
    assert.equal(error.code, -32602);
    assert.match(error.message, new RegExp(`^Invalid params: /0/subid: .*${sub.subid}`));
    return true;
  });
  assert.deepEqual(imgs('BAD'), [], 'nothing imported');
});

test('media:import:cancel (mapped): the later app’s cancel button cancels a running import', async () => {
  assert.deepEqual([...ipc.handlers.keys()].sort(), [...IPC_CHANNELS, 'media:import:cancel'].sort());
  assert.deepEqual(await ipc.invoke('media:import:cancel', 'no-such-session'), {
    cancelled: false,
    reason: 'No active import found',
  });

  // Enough bytes that the import is still hashing when the button is pressed.
  const folder = path.join(paths.dir, 'BIG');
  fs.mkdirSync(folder);
  for (let i = 0; i < 300; i += 1) {
    fs.writeFileSync(path.join(folder, `big-${String(i).padStart(4, '0')}.txt`), crypto.randomBytes(128 * 1024));
  }
  const hashing = nextEvent(bridge, 'import:v2:progress', (event) => event.step >= 2, 30_000);
  const importing = ipc.invoke('import:v2:start', { paths: [folder], locid: firstGen.locid });
  importing.catch(() => {}); // asserted below
  const progress = await hashing;
  // The store cancels with the sessionId of the last progress event (import-store.ts, cancelImport).
  assert.deepEqual(await ipc.invoke('media:import:cancel', progress.sessionId), { cancelled: true });
  const result = await within(importing, 30_000, 'the cancelled import to end');
  assert.equal(result.status, 'cancelled', JSON.stringify(result));
  assert.equal(result.sessionId, progress.sessionId);
  const complete = await window.waitFor('import:v2:complete', (event) => event.sessionId === progress.sessionId);
  assert.equal(complete.status, 'cancelled');
});

test('mapped beside the app’s own media:import:cancel handler: Electron refuses, nothing is registered', () => {
  const appIpc = new FakeIpcMain();
  const appHandler = () => ({ success: false, message: 'No active import found with that ID' });
  appIpc.handle('media:import:cancel', appHandler);
  assert.throws(
    () => createSidecarBridge({ command: process.execPath, ipcMain: appIpc, mapMediaImportCancel: true }),
    /second handler for 'media:import:cancel'/,
  );
  assert.deepEqual([...appIpc.handlers.entries()], [['media:import:cancel', appHandler]]);
});
