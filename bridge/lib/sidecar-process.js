// @ts-check
// One run of the sidecar: spawns it, speaks JSON-RPC over its stdio, drains its stderr to the
// logger, and stops it in stages. It never restarts anything; the bridge decides that.
'use strict';

const { spawn } = require('node:child_process');
const { JsonRpcConnection } = require('./json-rpc-connection');
const { LineSplitter } = require('./line-splitter');
const { SidecarExitedError } = require('./errors');
const { logSidecarLine } = require('./logger');

/**
 * @typedef {import('./logger').Logger} Logger
 * @typedef {import('../types/protocol').SidecarReadyNotification} SidecarReadyNotification
 * @typedef {{pid: number | undefined, code: number | null, signal: NodeJS.Signals | null,
 *   expected: boolean, error?: Error}} ExitInfo
 */

/** A stderr line longer than this is cut: logs are not worth unbounded memory. */
const MAX_STDERR_LINE_BYTES = 1024 * 1024;
/** After `exit`, how long stdout may take to deliver what the process wrote before dying. */
const STDOUT_DRAIN_MS = 200;
/**
 * On POSIX the sidecar leads its own process group, so whatever it leaves behind when it dies (its
 * process-pool workers, which hold its stdout and never notice a SIGKILLed parent) can be found
 * and stopped. Windows has no process groups, and `detached` would give the child a console.
 */
const OWN_PROCESS_GROUP = process.platform !== 'win32';
/** How long leftovers of a dead sidecar get to exit on SIGTERM before SIGKILL. */
const REAP_KILL_AFTER_MS = 2000;

/**
 * Resolves `true` when `promise` settles within `ms`, else `false`.
 * @param {Promise<unknown>} promise
 * @param {number} ms
 * @returns {Promise<boolean>}
 */
function settlesWithin(promise, ms) {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    const done = () => {
      clearTimeout(timer);
      resolve(true);
    };
    promise.then(done, done);
  });
}

class SidecarProcess {
  /** @type {import('node:child_process').ChildProcessWithoutNullStreams | null} */
  #child = null;
  /** @type {JsonRpcConnection | null} */
  #connection = null;
  #isReady = false;
  #hasExited = false;
  #stopRequested = false;
  #finished = false;
  /** @type {Promise<ExitInfo> | null} */
  #stopping = null;
  /** @type {NodeJS.Timeout | undefined} */
  #readyTimer;
  /** @type {(info: ExitInfo) => void} */
  #resolveExited = () => {};

  /**
   * @param {object} options
   * @param {string} options.command
   * @param {readonly string[]} options.args
   * @param {NodeJS.ProcessEnv} options.env the whole environment of the child
   * @param {string | undefined} options.cwd
   * @param {Logger} options.logger
   * @param {number} options.readyTimeoutMs kill the process when it is not ready by then
   * @param {number | undefined} options.maxLineBytes
   * @param {(method: string, params: unknown) => void} options.onNotification
   * @param {(info: ExitInfo) => void} options.onExit once, after in-flight calls were rejected
   */
  constructor(options) {
    this.options = options;
    /** @type {Promise<ExitInfo>} settles once, when the process is gone (or never started) */
    this.exited = new Promise((resolve) => {
      this.#resolveExited = resolve;
    });
  }

  get pid() {
    return this.#child?.pid;
  }

  /** The sidecar said `sidecar:ready` and has not exited since. */
  get isReady() {
    return this.#isReady && !this.#hasExited;
  }

  get hasExited() {
    return this.#hasExited;
  }

  start() {
    const { command, args, env, cwd, logger } = this.options;
    let child;
    try {
      child = spawn(command, [...args], {
        cwd,
        env,
        stdio: ['pipe', 'pipe', 'pipe'],
        windowsHide: true,
        detached: OWN_PROCESS_GROUP,
      });
    } catch (error) {
      // Bad arguments throw synchronously; a missing executable arrives as an 'error' event.
      this.#finish({ pid: undefined, code: null, signal: null, expected: false, error: asError(error) });
      return;
    }
    this.#child = child;
    const pid = child.pid;

    this.#connection = new JsonRpcConnection({
      readable: child.stdout,
      writable: child.stdin,
      logger,
      maxLineBytes: this.options.maxLineBytes,
      onNotification: (method, params) => {
        if (method === 'sidecar:ready' && !this.#isReady) {
          this.#isReady = true;
          clearTimeout(this.#readyTimer);
        }
        this.options.onNotification(method, params);
      },
    });

    const stderr = new LineSplitter({
      maxLineBytes: MAX_STDERR_LINE_BYTES,
      onLine: (line) => logSidecarLine(logger, line, pid),
      onOverflow: (bytes) =>
        logger.warn('dropped an over-long stderr line', { action: 'bridge.stderr_too_long', pid, bytes }),
    });
    child.stderr.on('data', (/** @type {Buffer} */ chunk) => stderr.push(chunk));
    child.stderr.on('end', () => stderr.end());

    // EPIPE and friends when the process dies mid-write: the exit handling below reports it.
    child.stdin.on('error', (error) =>
      logger.debug('sidecar stdin error', { action: 'bridge.stdin_error', pid, error: error.message }),
    );

    let exitCode = /** @type {number | null} */ (null);
    let exitSignal = /** @type {NodeJS.Signals | null} */ (null);
    /** @type {NodeJS.Timeout | undefined} */
    let drainTimer;
    const finish = () => {
      clearTimeout(drainTimer);
      this.#finish({ pid, code: exitCode, signal: exitSignal, expected: this.#stopRequested });
    };
    child.on('exit', (code, signal) => {
      exitCode = code;
      exitSignal = signal;
      this.#hasExited = true;
      // A clean exit stopped its own workers; anything else may have left them running.
      if (code !== 0) this.#reapGroup(pid);
      // Give stdout a moment to hand over answers written just before the exit ('close' comes
      // when it has), but never hold in-flight calls hostage to a pipe someone else keeps open.
      drainTimer = setTimeout(finish, STDOUT_DRAIN_MS);
    });
    child.on('close', finish);
    child.on('error', (error) => {
      if (child.pid === undefined) {
        this.#finish({ pid: undefined, code: null, signal: null, expected: this.#stopRequested, error });
      } else {
        logger.warn('sidecar process error', { action: 'bridge.process_error', pid, error: error.message });
      }
    });

    this.#readyTimer = setTimeout(() => {
      if (this.#isReady || this.#hasExited) return;
      logger.error('the sidecar did not get ready in time; killing it', {
        action: 'bridge.ready_timeout',
        pid,
        timeoutMs: this.options.readyTimeoutMs,
      });
      this.#signal('SIGKILL', { group: true });
    }, this.options.readyTimeoutMs);
  }

  /**
   * @param {string} method
   * @param {unknown[]} params
   */
  request(method, params) {
    if (!this.#connection) return Promise.reject(new SidecarExitedError(method, { code: null, signal: null }));
    return this.#connection.request(method, params);
  }

  /**
   * Staged shutdown: `sidecar:shutdown` → close stdin → wait → SIGTERM → wait → SIGKILL.
   * Resolves when the process is gone. Calls still in flight get their answers if the sidecar
   * sends them while winding down, and are rejected when it exits.
   * @param {{gracefulMs: number, terminateMs: number}} timeouts
   * @returns {Promise<ExitInfo>}
   */
  stop({ gracefulMs, terminateMs }) {
    if (this.#stopping) return this.#stopping;
    this.#stopRequested = true;
    this.#stopping = (async () => {
      const child = this.#child;
      if (!child || this.#hasExited) return this.exited;
      const { logger } = this.options;
      const pid = child.pid;
      const deadline = Date.now() + gracefulMs;
      const answered = this.request('sidecar:shutdown', []).catch(() => undefined);
      // The answer comes first, then the sidecar winds down; EOF on stdin says the same again
      // and is the one signal a sidecar that is not reading (still starting, stuck) cannot miss.
      await settlesWithin(Promise.race([answered, this.exited]), Math.min(gracefulMs, 2000));
      child.stdin.end();
      if (await settlesWithin(this.exited, Math.max(0, deadline - Date.now()))) return this.exited;

      logger.warn('the sidecar did not exit after shutdown; sending SIGTERM', {
        action: 'bridge.sigterm',
        pid,
        gracefulMs,
      });
      this.#signal('SIGTERM', { group: false });
      if (await settlesWithin(this.exited, terminateMs)) return this.exited;

      logger.error('the sidecar ignored SIGTERM; sending SIGKILL', { action: 'bridge.sigkill', pid, terminateMs });
      this.#signal('SIGKILL', { group: true });
      return this.exited;
    })();
    return this.#stopping;
  }

  /**
   * Sends a signal now (tests, or an app that must not wait).
   * @param {NodeJS.Signals} signal
   */
  kill(signal) {
    return this.#child?.kill(signal) ?? false;
  }

  /**
   * @param {NodeJS.Signals} signal
   * @param {{group: boolean}} options `group`: every process of the sidecar's group, not just it
   */
  #signal(signal, { group }) {
    const child = this.#child;
    if (!child?.pid) return;
    if (!(group && OWN_PROCESS_GROUP)) {
      child.kill(signal);
      return;
    }
    try {
      process.kill(-child.pid, signal);
    } catch (error) {
      if (/** @type {NodeJS.ErrnoException} */ (error).code !== 'ESRCH') throw error;
    }
  }

  /**
   * Stops what a sidecar that died left in its process group. SIGTERM first: the pool workers die
   * of it, and multiprocessing's resource tracker ignores it, sees their pipes close, cleans up
   * and exits. SIGKILL later for anything that did not.
   * @param {number | undefined} pid
   */
  #reapGroup(pid) {
    if (!OWN_PROCESS_GROUP || !pid) return;
    const signalGroup = (/** @type {NodeJS.Signals | 0} */ signal) => {
      try {
        process.kill(-pid, signal);
        return true;
      } catch {
        return false; // ESRCH: nobody left
      }
    };
    if (!signalGroup(0)) return;
    this.options.logger.warn('stopping the processes the sidecar left behind', {
      action: 'bridge.reap_group',
      pgid: pid,
    });
    signalGroup('SIGTERM');
    setTimeout(() => signalGroup('SIGKILL'), REAP_KILL_AFTER_MS).unref();
  }

  /** @param {ExitInfo} info */
  #finish(info) {
    if (this.#finished) return;
    this.#finished = true;
    this.#hasExited = true;
    clearTimeout(this.#readyTimer);
    this.#connection?.close((method) => new SidecarExitedError(method, info));
    this.options.onExit(info);
    this.#resolveExited(info);
  }
}

/** @param {unknown} error */
function asError(error) {
  return error instanceof Error ? error : new Error(String(error));
}

module.exports = { SidecarProcess, settlesWithin };
