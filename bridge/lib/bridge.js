// @ts-check
// The bridge Electron's main process holds: registers an ipcMain handler per import:v2:* and
// jobs:* channel (and, on request, the later app's media:import:cancel), forwards the sidecar's
// notifications to every live window, restarts a sidecar that dies (with backoff, giving up after
// repeated crashes) and disposes of it in stages.
// It knows Electron only through the two small shapes below, so tests pass stand-ins.
'use strict';

const { SidecarProcess } = require('./sidecar-process');
const { SidecarUnavailableError } = require('./errors');
const { consoleLogger } = require('./logger');
const { METHODS } = require('./protocol.generated');

/**
 * @typedef {import('./logger').Logger} Logger
 * @typedef {import('./sidecar-process').ExitInfo} ExitInfo
 * @typedef {import('../types/protocol').MethodName} MethodName
 * @typedef {import('../types/protocol').MethodParams} MethodParams
 * @typedef {import('../types/protocol').MethodResults} MethodResults
 * @typedef {import('../types/protocol').NotificationParams} NotificationParams
 * @typedef {import('../types/protocol').SidecarReadyNotification} SidecarReadyNotification
 * @typedef {import('../types/protocol').IpcChannel} IpcChannel
 */

/**
 * The part of Electron's `ipcMain` the bridge uses.
 * @typedef {object} IpcMainLike
 * @property {(channel: string, listener: (event: unknown, ...args: any[]) => unknown) => void} handle
 * @property {(channel: string) => void} removeHandler
 */

/**
 * The part of Electron's `BrowserWindow` the bridge uses.
 * @typedef {object} WindowLike
 * @property {() => boolean} isDestroyed
 * @property {{send: (channel: string, ...args: unknown[]) => void, isDestroyed?: () => boolean}} webContents
 */

/**
 * What `on()` can listen to: every notification of the protocol, plus the bridge's own
 * lifecycle events (never sent to windows).
 * @typedef {NotificationParams & {
 *   'bridge:spawn': {pid: number | undefined},
 *   'bridge:exit': ExitInfo,
 *   'bridge:restarting': {crashes: number, delayMs: number},
 *   'bridge:gave-up': {crashes: number, windowMs: number, error: Error},
 * }} BridgeEvents
 */

/**
 * @typedef {object} RestartPolicy
 * @property {number} [maxCrashes] give up at this many unexpected exits within `windowMs` (5)
 * @property {number} [windowMs] (60 000)
 * @property {number} [initialDelayMs] first restart delay, doubled per recent crash (200)
 * @property {number} [maxDelayMs] (5 000)
 */

/**
 * @typedef {object} SidecarBridgeOptions
 * @property {string} command the executable: a Python interpreter, or the frozen `au-sidecar`
 * @property {readonly string[]} [args] e.g. `['-m', 'sidecar', 'serve', '--db', file]`
 * @property {NodeJS.ProcessEnv} [env] merged over `process.env` (a key set to undefined is removed)
 * @property {string} [cwd]
 * @property {IpcMainLike} [ipcMain] Electron's `ipcMain`; without it no handlers are registered
 * @property {() => Iterable<WindowLike>} [getWindows] e.g. `() => BrowserWindow.getAllWindows()`
 * @property {Logger} [logger] console-like; default: the console, prefixed
 * @property {RestartPolicy} [restart]
 * @property {number} [readyTimeoutMs] kill a sidecar that is not ready by then (30 000)
 * @property {number} [shutdownTimeoutMs] how long dispose() waits for a graceful exit (10 000)
 * @property {number} [terminateTimeoutMs] how long it waits after SIGTERM before SIGKILL (2 000)
 * @property {number} [maxLineBytes] message cap (16 MiB, the protocol's)
 * @property {boolean} [mapMediaImportCancel] also handle `media:import:cancel` (the later app's
 *   cancel button) as `import:v2:cancel`; off by default. Only when the app's own handler for that
 *   channel is removed: Electron refuses a second one.
 */

/**
 * @typedef {object} SidecarBridge
 * @property {Promise<SidecarReadyNotification>} ready resolves when a sidecar is ready to take
 *   requests (after a crash, when its replacement is); rejects once the bridge gave up or was disposed
 * @property {<M extends MethodName>(method: M, params?: MethodParams[M]) => Promise<MethodResults[M]>} request
 *   calls a method with its positional params; waits for a sidecar that is starting or restarting
 * @property {<E extends keyof BridgeEvents>(event: E, listener: (payload: BridgeEvents[E]) => void) => () => void} on
 *   listens to a notification or lifecycle event; returns the function that stops listening
 * @property {() => Promise<void>} dispose stops the sidecar in stages and removes the ipcMain handlers; idempotent
 * @property {number | undefined} pid the current sidecar process id, if one runs
 */

const DEFAULT_RESTART = Object.freeze({ maxCrashes: 5, windowMs: 60_000, initialDelayMs: 200, maxDelayMs: 5_000 });

/** The channels the renderer may invoke: the app's import:v2:* and jobs:* handlers. */
const IPC_CHANNELS = /** @type {IpcChannel[]} */ (
  METHODS.filter((method) => method.startsWith('import:v2:') || method.startsWith('jobs:'))
);

/**
 * Channels of the app's other handlers that `mapMediaImportCancel` answers with a method of the
 * contract. The later generation (bizzlechizzle/abandoned-archive) cancels a v2 import with
 * `window.electronAPI.media.cancelImport(importId)` (packages/desktop/src/stores/import-store.ts,
 * cancelImport), i.e. `invoke('media:import:cancel', importId)` (electron/preload/preload.cjs), where
 * `importId` is the `sessionId` of the last `import:v2:progress`: exactly `import:v2:cancel`'s param.
 * The result is `import:v2:cancel`'s (`{cancelled: true}` or `{cancelled: false, reason}`); the
 * store only awaits it.
 * @type {Readonly<Record<string, IpcChannel>>}
 */
const MAPPED_CHANNELS = Object.freeze({ 'media:import:cancel': 'import:v2:cancel' });

/**
 * A promise with its settle functions, and whether it has settled.
 * @template T
 */
class Deferred {
  constructor() {
    this.settled = false;
    /** @type {(value: T) => void} */
    this.resolve = () => {};
    /** @type {(error: Error) => void} */
    this.reject = () => {};
    /** @type {Promise<T>} */
    this.promise = new Promise((resolve, reject) => {
      this.resolve = (value) => {
        this.settled = true;
        resolve(value);
      };
      this.reject = (error) => {
        this.settled = true;
        reject(error);
      };
    });
    // Nobody has to await `ready`: a rejection nobody asked about is not an unhandled one.
    this.promise.catch(() => {});
  }
}

class Bridge {
  /** @type {SidecarProcess | null} */
  #current = null;
  /** Every sidecar started and not yet seen to exit: dispose() stops them all, current or not. */
  #live = new Set();
  /**
   * Settled iff a ready sidecar runs now (resolved), or none ever will again (rejected).
   * @type {Deferred<SidecarReadyNotification>}
   */
  #ready = new Deferred();
  /** @type {number[]} times of recent unexpected exits */
  #crashes = [];
  /** @type {NodeJS.Timeout | undefined} */
  #restartTimer;
  /** @type {SidecarUnavailableError | null} */
  #unavailable = null;
  /** @type {Promise<void> | null} */
  #disposing = null;
  /** @type {Map<string, Set<(payload: any) => void>>} */
  #listeners = new Map();
  /** @type {string[]} */
  #registered = [];

  /** @param {SidecarBridgeOptions} options */
  constructor(options) {
    if (!options || typeof options.command !== 'string' || options.command === '') {
      throw new TypeError('createSidecarBridge: `command` is required');
    }
    this.options = options;
    this.logger = options.logger ?? consoleLogger;
    this.restart = { ...DEFAULT_RESTART, ...options.restart };
    this.getWindows = options.getWindows ?? (() => []);
    this.env = mergeEnv(options.env);
  }

  get ready() {
    return this.#ready.promise;
  }

  get pid() {
    return this.#current?.pid;
  }

  start() {
    this.#registerHandlers();
    this.#spawn();
  }

  /**
   * @param {string} method
   * @param {unknown[]} [params]
   * @returns {Promise<any>}
   */
  request(method, params = []) {
    if (this.#unavailable) return Promise.reject(this.#unavailable);
    if (!Array.isArray(params)) {
      return Promise.reject(new TypeError(`${method}: params must be the positional array of arguments`));
    }
    const current = this.#current;
    if (current?.isReady) return current.request(method, params);
    // Exited, and its in-flight calls are being rejected: let the bridge see the exit first.
    if (current?.hasExited) return current.exited.then(() => this.request(method, params));
    // Starting or restarting: wait for the next ready (or for the bridge to give up).
    return this.#ready.promise.then(() => this.request(method, params));
  }

  /**
   * @param {string} event
   * @param {(payload: any) => void} listener
   */
  on(event, listener) {
    let listeners = this.#listeners.get(event);
    if (!listeners) {
      listeners = new Set();
      this.#listeners.set(event, listeners);
    }
    listeners.add(listener);
    return () => {
      listeners.delete(listener);
    };
  }

  dispose() {
    if (this.#disposing) return this.#disposing;
    const error = new SidecarUnavailableError('The sidecar bridge was disposed', 'SIDECAR_DISPOSED');
    this.#unavailable ??= error;
    clearTimeout(this.#restartTimer);
    this.#removeHandlers();
    this.#settleReady(this.#unavailable);
    const current = this.#current;
    this.logger.info('stopping the sidecar', { action: 'bridge.dispose', pid: current?.pid });
    for (const sidecar of this.#live) {
      if (sidecar !== current) {
        // Not expected: a restart raced an exit. Whatever it is, it must not outlive the bridge.
        this.logger.warn('stopping a sidecar that is not the current one', { action: 'bridge.stray', pid: sidecar.pid });
      }
    }
    const timeouts = {
      gracefulMs: this.options.shutdownTimeoutMs ?? 10_000,
      terminateMs: this.options.terminateTimeoutMs ?? 2_000,
    };
    this.#disposing = (async () => {
      await Promise.all([...this.#live].map((sidecar) => sidecar.stop(timeouts)));
      this.#listeners.clear();
    })();
    return this.#disposing;
  }

  /**
   * Every channel the bridge answers, with the method each one calls.
   * @returns {Array<[string, IpcChannel]>}
   */
  #channels() {
    /** @type {Array<[string, IpcChannel]>} */
    const channels = IPC_CHANNELS.map((channel) => [channel, channel]);
    if (this.options.mapMediaImportCancel) channels.push(...Object.entries(MAPPED_CHANNELS));
    return channels;
  }

  #registerHandlers() {
    const { ipcMain } = this.options;
    if (!ipcMain) return;
    try {
      for (const [channel, method] of this.#channels()) {
        // The renderer's invoke arguments are the positional params, as the preload passes them.
        ipcMain.handle(channel, (_event, ...args) => this.request(method, args));
        this.#registered.push(channel);
      }
    } catch (error) {
      // Electron refuses a second handler for a channel: leave nothing half-registered.
      this.#removeHandlers();
      throw error;
    }
  }

  #removeHandlers() {
    for (const channel of this.#registered.splice(0)) this.options.ipcMain?.removeHandler(channel);
  }

  #spawn() {
    this.#restartTimer = undefined;
    const sidecar = new SidecarProcess({
      command: this.options.command,
      args: this.options.args ?? [],
      env: this.env,
      cwd: this.options.cwd,
      logger: this.logger,
      readyTimeoutMs: this.options.readyTimeoutMs ?? 30_000,
      maxLineBytes: this.options.maxLineBytes,
      onNotification: (method, params) => this.#onNotification(sidecar, method, params),
      onExit: (info) => this.#onExit(sidecar, info),
    });
    this.#current = sidecar;
    this.#live.add(sidecar);
    sidecar.start();
    if (sidecar.pid !== undefined) {
      this.logger.info('started the sidecar', { action: 'bridge.spawn', pid: sidecar.pid });
      this.#emit('bridge:spawn', { pid: sidecar.pid });
    }
  }

  /**
   * @param {SidecarProcess} sidecar
   * @param {string} method
   * @param {unknown} params
   */
  #onNotification(sidecar, method, params) {
    if (sidecar !== this.#current) return;
    if (method === 'sidecar:ready' && !this.#ready.settled) {
      this.logger.info('the sidecar is ready', { action: 'bridge.ready', pid: sidecar.pid });
      this.#ready.resolve(/** @type {SidecarReadyNotification} */ (params));
    }
    this.#emit(method, params);
    this.#forward(method, params);
  }

  /**
   * @param {SidecarProcess} sidecar
   * @param {ExitInfo} info
   */
  #onExit(sidecar, info) {
    const level = info.expected ? 'info' : 'error';
    this.logger[level](info.expected ? 'the sidecar exited' : 'the sidecar exited unexpectedly', {
      action: 'bridge.exit',
      pid: info.pid,
      code: info.code,
      signal: info.signal,
      error: info.error?.message,
    });
    this.#emit('bridge:exit', info);
    this.#live.delete(sidecar);
    if (sidecar !== this.#current) return;
    this.#current = null;
    if (this.#unavailable) return; // disposed: no restart
    // A ready sidecar that died leaves the bridge waiting for the next one.
    if (this.#ready.settled) this.#ready = new Deferred();

    const now = Date.now();
    this.#crashes = this.#crashes.filter((time) => now - time < this.restart.windowMs);
    this.#crashes.push(now);
    const crashes = this.#crashes.length;
    if (crashes >= this.restart.maxCrashes) {
      const seconds = Math.round(this.restart.windowMs / 1000);
      const error = new SidecarUnavailableError(
        `The sidecar crashed ${crashes} times within ${seconds} s; not restarting it`,
        'SIDECAR_GAVE_UP',
      );
      this.#unavailable = error;
      this.#removeHandlers();
      // Keep answering the renderer, with the reason, rather than "no handler registered".
      this.#registerGaveUpHandlers(error);
      this.#settleReady(error);
      this.logger.error(error.message, { action: 'bridge.gave_up', crashes, windowMs: this.restart.windowMs });
      this.#emit('bridge:gave-up', { crashes, windowMs: this.restart.windowMs, error });
      return;
    }
    const delayMs = Math.min(this.restart.initialDelayMs * 2 ** (crashes - 1), this.restart.maxDelayMs);
    this.logger.warn('restarting the sidecar', { action: 'bridge.restart', crashes, delayMs });
    this.#emit('bridge:restarting', { crashes, delayMs });
    this.#restartTimer = setTimeout(() => this.#spawn(), delayMs);
  }

  /** @param {SidecarUnavailableError} error */
  #registerGaveUpHandlers(error) {
    const { ipcMain } = this.options;
    if (!ipcMain) return;
    for (const [channel] of this.#channels()) {
      ipcMain.handle(channel, () => Promise.reject(error));
      this.#registered.push(channel);
    }
  }

  /**
   * Makes `ready` (and every call waiting on it) reject: now, or from now on.
   * @param {Error} error
   */
  #settleReady(error) {
    if (this.#ready.settled) this.#ready = new Deferred();
    this.#ready.reject(error);
  }

  /**
   * @param {string} event
   * @param {unknown} payload
   */
  #emit(event, payload) {
    const listeners = this.#listeners.get(event);
    if (!listeners) return;
    for (const listener of [...listeners]) {
      try {
        listener(payload);
      } catch (error) {
        this.logger.error('a bridge listener threw', { action: 'bridge.listener_error', event, error: String(error) });
      }
    }
  }

  /**
   * Sends a notification to every live window, as the app's main process did.
   * @param {string} method
   * @param {unknown} params
   */
  #forward(method, params) {
    let windows;
    try {
      windows = this.getWindows();
    } catch (error) {
      this.logger.error('getWindows threw', { action: 'bridge.get_windows_error', error: String(error) });
      return;
    }
    for (const window of windows) {
      try {
        if (!window || window.isDestroyed()) continue;
        const contents = window.webContents;
        if (!contents || contents.isDestroyed?.()) continue;
        contents.send(method, params);
      } catch (error) {
        // A window closing between the check and the send: skip it, keep the others.
        this.logger.warn('could not send to a window', { action: 'bridge.send_error', method, error: String(error) });
      }
    }
  }
}

/**
 * @param {NodeJS.ProcessEnv | undefined} overrides
 * @returns {NodeJS.ProcessEnv}
 */
function mergeEnv(overrides) {
  const env = { ...process.env, ...overrides };
  for (const [key, value] of Object.entries(env)) if (value === undefined) delete env[key];
  return env;
}

/**
 * Spawns the sidecar and wires it to Electron's main process. See README.md.
 * @param {SidecarBridgeOptions} options
 * @returns {SidecarBridge}
 */
function createSidecarBridge(options) {
  const bridge = new Bridge(options);
  bridge.start();
  return {
    get ready() {
      return bridge.ready;
    },
    get pid() {
      return bridge.pid;
    },
    request: (method, params) => bridge.request(method, params),
    on: (event, listener) => bridge.on(event, listener),
    dispose: () => bridge.dispose(),
  };
}

module.exports = { createSidecarBridge, IPC_CHANNELS, MAPPED_CHANNELS };
