// @ts-check
// The errors a bridge call can reject with. Wire errors keep the sidecar's own message (invalid
// params add their named problems to it), code and data; the others say why no answer can come.
// Knows nothing of processes or Electron.
'use strict';

/** At most this many of an invalid call's issues go into its message (the rest are counted). */
const MAX_ISSUES_IN_MESSAGE = 20;
/** An issue's own message is cut to this many characters in the error's message. */
const MAX_ISSUE_CHARS = 300;

/**
 * The sidecar answered with a JSON-RPC error; switch on `code` or `data.kind`. `message` is the
 * sidecar's message as is (the renderer shows it, as the app's old handlers rethrew theirs),
 * except for invalid params (−32602), whose message also names each problem:
 * `Invalid params: /0/locid: …; /0/paths/0: …`. Electron passes only an error's `message` to the
 * renderer, which would otherwise learn nothing but "Invalid params"; `data.issues` stays as sent.
 */
class SidecarRpcError extends Error {
  /**
   * @param {{code: number, message: string, data?: unknown}} error the `error` member of the response
   * @param {string} method the method that was called
   */
  constructor(error, method) {
    super(describe(error));
    this.name = 'SidecarRpcError';
    /** @type {number} */
    this.code = error.code;
    /** @type {unknown} */
    this.data = error.data;
    this.method = method;
  }
}

/**
 * The message of a wire error: the sidecar's, plus the named problems of invalid params.
 * @param {{code: number, message: string, data?: unknown}} error
 * @returns {string}
 */
function describe(error) {
  const message = String(error.message);
  if (error.code !== -32602) return message;
  const issues = /** @type {{issues?: unknown}} */ (error.data ?? {}).issues;
  if (!Array.isArray(issues) || issues.length === 0) return message;
  const named = issues.slice(0, MAX_ISSUES_IN_MESSAGE).map((issue) => {
    const { path, message: what } = /** @type {{path?: unknown, message?: unknown}} */ (issue ?? {});
    // A JSON Pointer into the params array; "" is the array itself (e.g. too many arguments).
    const where = typeof path === 'string' && path !== '' ? path : '(params)';
    const text = String(what ?? 'invalid');
    return `${where}: ${text.length > MAX_ISSUE_CHARS ? `${text.slice(0, MAX_ISSUE_CHARS - 1)}…` : text}`;
  });
  const rest = issues.length - named.length;
  if (rest > 0) named.push(`and ${rest} more`);
  return `${message}: ${named.join('; ')}`;
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
