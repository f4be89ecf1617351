// @ts-check
// The errors a bridge call can reject with. Wire errors keep the sidecar's own message, code and
// data; the others say why no answer can come. Knows nothing of processes or Electron.
'use strict';

/**
 * The sidecar answered with a JSON-RPC error. `message` is the sidecar's message as is (the
 * renderer shows it, as the app's old handlers rethrew theirs); switch on `code` or `data.kind`.
 */
class SidecarRpcError extends Error {
  /**
   * @param {{code: number, message: string, data?: unknown}} error the `error` member of the response
   * @param {string} method the method that was called
   */
  constructor(error, method) {
    super(error.message);
    this.name = 'SidecarRpcError';
    /** @type {number} */
    this.code = error.code;
    /** @type {unknown} */
    this.data = error.data;
    this.method = method;
  }
}

/** The sidecar process went away while the call was in flight; the call may or may not have run. */
class SidecarExitedError extends Error {
  /**
   * @param {string} method
   * @param {{code: number | null, signal: NodeJS.Signals | null}} exit
   */
  constructor(method, exit) {
    const how = exit.signal ? `signal ${exit.signal}` : `code ${exit.code}`;
    super(`The sidecar exited (${how}) before answering ${method}`);
    this.name = 'SidecarExitedError';
    this.code = 'SIDECAR_EXITED';
    this.method = method;
    this.exitCode = exit.code;
    this.signal = exit.signal;
  }
}

/** No sidecar will answer: the bridge was disposed, or gave up restarting a crashing sidecar. */
class SidecarUnavailableError extends Error {
  /**
   * @param {string} message
   * @param {'SIDECAR_DISPOSED' | 'SIDECAR_GAVE_UP' | 'SIDECAR_NOT_SENT'} code
   */
  constructor(message, code) {
    super(message);
    this.name = 'SidecarUnavailableError';
    this.code = code;
  }
}

module.exports = { SidecarRpcError, SidecarExitedError, SidecarUnavailableError };
