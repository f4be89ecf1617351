// @ts-check
// JSON-RPC 2.0 client over a pair of byte streams: NDJSON framing, requests matched to responses by
// id in any order, notifications handed to a callback, and writes that respect backpressure.
// Knows nothing of processes, restarts or Electron.
'use strict';

const { LineSplitter, MAX_LINE_BYTES } = require('./line-splitter');
const { SidecarRpcError, SidecarUnavailableError } = require('./errors');

/**
 * @typedef {import('./logger').Logger} Logger
 * @typedef {{method: string, resolve: (result: unknown) => void, reject: (error: Error) => void}} Pending
 */

class JsonRpcConnection {
  /** @type {Map<number, Pending>} */
  #pending = new Map();
  #nextId = 1;
  /** @type {string[]} lines waiting for the writable to drain */
  #queue = [];
  #queueHead = 0;
  #waitingForDrain = false;
  /** @type {((method: string) => Error) | null} */
  #closedWith = null;

  /**
   * @param {object} options
   * @param {NodeJS.ReadableStream} options.readable the peer's output (the sidecar's stdout)
   * @param {NodeJS.WritableStream} options.writable the peer's input (the sidecar's stdin)
   * @param {(method: string, params: unknown) => void} options.onNotification
   * @param {Logger} options.logger
   * @param {number} [options.maxLineBytes] cap on a message, both ways
   */
  constructor({ readable, writable, onNotification, logger, maxLineBytes = MAX_LINE_BYTES }) {
    this.writable = writable;
    this.onNotification = onNotification;
    this.logger = logger;
    this.maxLineBytes = maxLineBytes;
    const splitter = new LineSplitter({
      maxLineBytes,
      onLine: (line) => this.#receive(line),
      onOverflow: (bytes) =>
        this.logger.error('dropped an over-long message from the sidecar', { action: 'bridge.line_too_long', bytes }),
    });
    readable.on('data', (/** @type {Buffer} */ chunk) => splitter.push(chunk));
    readable.on('end', () => splitter.end());
  }

  /** Calls still waiting for their response. */
  get pendingCount() {
    return this.#pending.size;
  }

  /**
   * Sends a request and resolves with its result, or rejects with a {@link SidecarRpcError}
   * carrying the sidecar's message, code and data.
   * @param {string} method
   * @param {unknown[]} params the positional params array
   * @returns {Promise<unknown>}
   */
  request(method, params) {
    if (this.#closedWith) return Promise.reject(this.#closedWith(method));
    const id = this.#nextId++;
    const line = `${JSON.stringify({ jsonrpc: '2.0', id, method, params })}\n`;
    // A UTF-8 byte is at most 3 per UTF-16 unit: only long strings need measuring.
    if (line.length * 3 > this.maxLineBytes && Buffer.byteLength(line) - 1 > this.maxLineBytes) {
      return Promise.reject(
        new SidecarUnavailableError(
          `${method}: the request exceeds the protocol's 16 MiB message cap`,
          'SIDECAR_NOT_SENT',
        ),
      );
    }
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { method, resolve, reject });
      this.#write(line);
    });
  }

  /**
   * Rejects every pending call and every later one with the error `reason` makes for its method.
   * @param {(method: string) => Error} reason
   */
  close(reason) {
    if (this.#closedWith) return;
    this.#closedWith = reason;
    this.#queue = [];
    this.#queueHead = 0;
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const call of pending) call.reject(reason(call.method));
  }

  /** @param {string} line */
  #write(line) {
    if (this.#waitingForDrain) {
      this.#queue.push(line);
      return;
    }
    if (!this.writable.write(line)) this.#waitForDrain();
  }

  #waitForDrain() {
    this.#waitingForDrain = true;
    this.writable.once('drain', this.#onDrain);
  }

  #onDrain = () => {
    this.#waitingForDrain = false;
    if (this.#closedWith) return;
    while (this.#queueHead < this.#queue.length) {
      const line = this.#queue[this.#queueHead++];
      if (!this.writable.write(line)) {
        this.#waitForDrain();
        break;
      }
    }
    if (this.#queueHead === this.#queue.length) {
      this.#queue = [];
      this.#queueHead = 0;
    } else if (this.#queueHead > 1024) {
      this.#queue = this.#queue.slice(this.#queueHead);
      this.#queueHead = 0;
    }
  };

  /** @param {string} line */
  #receive(line) {
    if (line.trim() === '') return;
    /** @type {unknown} */
    let message;
    try {
      message = JSON.parse(line);
    } catch {
      this.logger.warn('the sidecar wrote a line that is not JSON', {
        action: 'bridge.bad_line',
        preview: line.slice(0, 200),
      });
      return;
    }
    if (Array.isArray(message)) {
      for (const item of message) this.#dispatch(item);
    } else {
      this.#dispatch(message);
    }
  }

  /** @param {unknown} message */
  #dispatch(message) {
    if (message === null || typeof message !== 'object') {
      this.logger.warn('the sidecar sent a message that is not an object', { action: 'bridge.bad_message' });
      return;
    }
    const { id, method, params, result, error } = /** @type {{[key: string]: any}} */ (message);
    if (typeof method === 'string') {
      if (id === undefined) {
        this.onNotification(method, params);
      } else {
        // The protocol has no sidecar → app requests; answer so the peer does not wait forever.
        const error = { code: -32601, message: 'Method not found' };
        this.#write(`${JSON.stringify({ jsonrpc: '2.0', id, error })}\n`);
      }
      return;
    }
    const call = typeof id === 'number' ? this.#pending.get(id) : undefined;
    if (!call) {
      this.logger.warn('the sidecar answered no pending request', {
        action: 'bridge.unmatched_response',
        id,
        error,
      });
      return;
    }
    this.#pending.delete(/** @type {number} */ (id));
    if (error !== undefined) {
      const wireError = error && typeof error === 'object' ? error : { code: -32603, message: String(error) };
      call.reject(new SidecarRpcError(wireError, call.method));
    } else {
      call.resolve(result);
    }
  }
}

module.exports = { JsonRpcConnection };
