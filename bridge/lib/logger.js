// @ts-check
// The logger the bridge writes to, and the mapping of the sidecar's stderr JSON lines onto it.
// Every entry carries an `action`, as the sidecar's own log lines do.
'use strict';

/**
 * Console-like: `console` itself fits, and so do pino, winston and electron-log.
 * @typedef {object} Logger
 * @property {(message: string, fields?: Record<string, unknown>) => void} debug
 * @property {(message: string, fields?: Record<string, unknown>) => void} info
 * @property {(message: string, fields?: Record<string, unknown>) => void} warn
 * @property {(message: string, fields?: Record<string, unknown>) => void} error
 */

/** @typedef {'debug' | 'info' | 'warn' | 'error'} Level */

/** @type {Record<string, Level>} */
const LEVELS = {
  debug: 'debug',
  info: 'info',
  warning: 'warn',
  warn: 'warn',
  error: 'error',
  critical: 'error',
};

/**
 * Writes to the console with a prefix; the default when no logger is given.
 * @type {Logger}
 */
const consoleLogger = {
  debug: (message, fields) => console.debug(`[au-sidecar] ${message}`, fields ?? ''),
  info: (message, fields) => console.info(`[au-sidecar] ${message}`, fields ?? ''),
  warn: (message, fields) => console.warn(`[au-sidecar] ${message}`, fields ?? ''),
  error: (message, fields) => console.error(`[au-sidecar] ${message}`, fields ?? ''),
};

/**
 * Logs one stderr line of the sidecar: a JSON log line keeps its level, message and fields; any
 * other line (a traceback printed before logging was set up, a native library's warning) is
 * logged as a warning as is.
 * @param {Logger} logger
 * @param {string} line
 * @param {number | undefined} pid
 */
function logSidecarLine(logger, line, pid) {
  if (line.trim() === '') return;
  if (line.startsWith('{')) {
    try {
      const { level, msg, ...fields } = JSON.parse(line);
      const method = LEVELS[String(level).toLowerCase()] ?? 'info';
      logger[method](typeof msg === 'string' ? msg : line, { ...fields, pid, source: 'sidecar' });
      return;
    } catch {
      // Not JSON after all: fall through and log it raw.
    }
  }
  logger.warn(line, { action: 'sidecar.stderr', pid, source: 'sidecar' });
}

module.exports = { consoleLogger, logSidecarLine };
