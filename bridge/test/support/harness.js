// @ts-check
// What the bridge tests share: the real sidecar's command line in a temp directory, stand-ins for
// Electron's ipcMain and BrowserWindow, a recording logger, fixtures written through Python, and
// bounded waits (no test sleeps for a fixed time).
'use strict';

const { execFileSync } = require('node:child_process');
const { EventEmitter } = require('node:events');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

/**
 * @typedef {import('../../lib/bridge').IpcMainLike} IpcMainLike
 * @typedef {import('../../lib/bridge').WindowLike} WindowLike
 */

const REPO = path.resolve(__dirname, '../../..');
const PYTHON = path.resolve(__dirname, '../../../.venv/bin/python');
const FIXTURES = path.join(__dirname, 'fixtures.py');

/**
 * A fresh directory with a database path, an archive and a source folder.
 * @param {import('node:test').TestContext | {after: (fn: () => void) => void}} [t] a test: removed when the test file exits
 */
function tempPaths(t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'au-bridge-'));
  const paths = {
    dir,
    db: path.join(dir, 'au-archive.db'),
    archive: path.join(dir, 'archive'),
    source: path.join(dir, 'source'),
  };
  fs.mkdirSync(paths.source);
  fs.mkdirSync(paths.archive);
  if (t) TEMP_DIRS.add(dir);
  return paths;
}

// Removed when the test file's process exits, not in a test's own after-hook: hooks run in the
// order they were added, and this one comes before the test's bridge.dispose(), so it would
// remove the folders under a sidecar still writing (its background jobs), fail with ENOTEMPTY,
// and the dispose after it would never run, leaving the sidecar and the test process alive.
const TEMP_DIRS = new Set();
process.once('exit', () => {
  for (const dir of TEMP_DIRS) fs.rmSync(dir, { recursive: true, force: true });
});

/**
 * The options createSidecarBridge needs to run this checkout's sidecar.
 * @param {{db: string, archive: string}} paths
 */
function sidecarCommand(paths) {
  return {
    command: PYTHON,
    args: ['-m', 'sidecar', 'serve', '--db', paths.db, '--archive', paths.archive],
    cwd: REPO,
  };
}

/**
 * Runs test/support/fixtures.py and returns the JSON it prints.
 * @param {string[]} args
 * @returns {any}
 */
function fixture(...args) {
  return JSON.parse(execFileSync(PYTHON, [FIXTURES, ...args], { cwd: REPO, encoding: 'utf8' }));
}

/**
 * Electron's ipcMain as far as the bridge uses it; `invoke` plays the renderer's ipcRenderer.invoke.
 * @implements {IpcMainLike}
 */
class FakeIpcMain {
  /** @type {Map<string, (event: unknown, ...args: any[]) => unknown>} */
  handlers = new Map();
  /** @type {string[]} */
  removed = [];

  /**
   * @param {string} channel
   * @param {(event: unknown, ...args: any[]) => unknown} listener
   */
  handle(channel, listener) {
    // Electron throws on a second handler for a channel.
    if (this.handlers.has(channel)) throw new Error(`Attempted to register a second handler for '${channel}'`);
    this.handlers.set(channel, listener);
  }

  /** @param {string} channel */
  removeHandler(channel) {
    this.handlers.delete(channel);
    this.removed.push(channel);
  }

  /**
   * @param {string} channel
   * @param {unknown[]} args
   * @returns {Promise<any>}
   */
  async invoke(channel, ...args) {
    const handler = this.handlers.get(channel);
    if (!handler) throw new Error(`No handler registered for '${channel}'`);
    return handler({ sender: { id: 1 }, frameId: 1 }, ...args);
  }
}

/**
 * A BrowserWindow that records what its webContents were sent.
 * @implements {WindowLike}
 */
class FakeWindow {
  /** @type {Array<[string, any]>} */
  sent = [];
  destroyed = false;
  contentsDestroyed = false;
  events = new EventEmitter();
  webContents = {
    /**
     * @param {string} channel
     * @param {unknown[]} args
     */
    send: (channel, ...args) => {
      if (this.destroyed || this.contentsDestroyed) throw new Error('Object has been destroyed');
      this.sent.push([channel, args[0]]);
      this.events.emit(channel, args[0]);
    },
    isDestroyed: () => this.contentsDestroyed,
  };

  isDestroyed() {
    return this.destroyed;
  }

  /** @param {string} channel */
  received(channel) {
    return this.sent.filter(([name]) => name === channel).map(([, payload]) => payload);
  }

  /**
   * Resolves with the first payload on `channel` that matches, already received or still to come.
   * @param {string} channel
   * @param {(payload: any) => boolean} [predicate]
   * @param {number} [ms]
   */
  waitFor(channel, predicate = () => true, ms = 10_000) {
    const seen = this.received(channel).find(predicate);
    if (seen !== undefined) return Promise.resolve(seen);
    return within(
      new Promise((resolve) => {
        /** @param {any} payload */
        const listener = (payload) => {
          if (!predicate(payload)) return;
          this.events.off(channel, listener);
          resolve(payload);
        };
        this.events.on(channel, listener);
      }),
      ms,
      `the window to receive ${channel}`,
    );
  }
}

/** A logger that keeps every entry. */
function recordingLogger() {
  /** @type {Array<{level: string, message: string, fields: Record<string, any>}>} */
  const entries = [];
  /** @param {string} level */
  const at = (level) => (/** @type {string} */ message, /** @type {Record<string, any>} */ fields = {}) => {
    entries.push({ level, message, fields });
  };
  return { entries, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/**
 * Settles like `promise`, or rejects when it takes longer than `ms`.
 * @template T
 * @param {Promise<T>} promise
 * @param {number} ms
 * @param {string} what
 * @returns {Promise<T>}
 */
function within(promise, ms, what) {
  /** @type {NodeJS.Timeout | undefined} */
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return /** @type {Promise<T>} */ (Promise.race([promise, timeout]).finally(() => clearTimeout(timer)));
}

/**
 * The next payload of a bridge event that matches.
 * @param {{on: (event: any, listener: (payload: any) => void) => () => void}} bridge
 * @param {string} event
 * @param {(payload: any) => boolean} [predicate]
 * @param {number} [ms]
 * @returns {Promise<any>}
 */
function nextEvent(bridge, event, predicate = () => true, ms = 10_000) {
  /** @type {() => void} */
  let off = () => {};
  const promise = new Promise((resolve) => {
    off = bridge.on(event, (payload) => {
      if (predicate(payload)) resolve(payload);
    });
  });
  return within(promise, ms, `bridge event ${event}`).finally(() => off());
}

/**
 * Whether a process with this id exists (and is not a zombie we have reaped: Node reaps its
 * children when it reports their exit).
 * @param {number} pid
 */
function isAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    if (/** @type {NodeJS.ErrnoException} */ (error).code === 'ESRCH') return false;
    throw error;
  }
}

/**
 * Whether any process of the process group `pgid` is left (the sidecar leads its own group).
 * @param {number} pgid
 */
function groupAlive(pgid) {
  return isAlive(-pgid);
}

/**
 * Resolves once `condition()` holds, checking every 20 ms; rejects after `ms`. For states nothing
 * announces (a process someone else reaps), never instead of waiting on an event.
 * @param {() => boolean} condition
 * @param {number} ms
 * @param {string} what
 */
async function waitUntil(condition, ms, what) {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

module.exports = {
  groupAlive,
  waitUntil,
  REPO,
  PYTHON,
  tempPaths,
  sidecarCommand,
  fixture,
  FakeIpcMain,
  FakeWindow,
  recordingLogger,
  within,
  nextEvent,
  isAlive,
};
