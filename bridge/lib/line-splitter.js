// @ts-check
// Splits a byte stream into `\n`-terminated lines with a size cap, the framing of protocol/README.md.
// Works on bytes so a UTF-8 character split across chunks is decoded whole; knows nothing of JSON.
'use strict';

/** 16 MiB: the protocol's cap on one message. */
const MAX_LINE_BYTES = 16 * 1024 * 1024;
const NEWLINE = 0x0a;

class LineSplitter {
  /**
   * @param {object} options
   * @param {(line: string) => void} options.onLine called with each line, without its `\n`
   * @param {(bytes: number) => void} [options.onOverflow] called once per line longer than the cap
   *   (the line is dropped and splitting carries on after its `\n`)
   * @param {number} [options.maxLineBytes]
   */
  constructor({ onLine, onOverflow = () => {}, maxLineBytes = MAX_LINE_BYTES }) {
    this.onLine = onLine;
    this.onOverflow = onOverflow;
    this.maxLineBytes = maxLineBytes;
    /** @type {Buffer[]} */
    this.parts = [];
    this.buffered = 0;
    /** Bytes of an over-long line seen so far; > 0 while its remainder is being skipped. */
    this.skipping = 0;
  }

  /** @param {Buffer} chunk */
  push(chunk) {
    let start = 0;
    let end = chunk.indexOf(NEWLINE, start);
    while (end !== -1) {
      if (this.skipping) {
        this.onOverflow(this.skipping + end - start);
        this.skipping = 0;
      } else if (this.buffered + end - start > this.maxLineBytes) {
        this.onOverflow(this.buffered + end - start);
        this.reset();
      } else if (this.buffered === 0) {
        this.emit(chunk.toString('utf8', start, end));
      } else {
        this.parts.push(chunk.subarray(start, end));
        const line = Buffer.concat(this.parts, this.buffered + end - start).toString('utf8');
        this.reset();
        this.emit(line);
      }
      start = end + 1;
      end = chunk.indexOf(NEWLINE, start);
    }
    if (start >= chunk.length) return;
    const rest = chunk.length - start;
    if (this.skipping) {
      this.skipping += rest;
    } else if (this.buffered + rest > this.maxLineBytes) {
      // Drop what we hold now rather than growing to the end of an unbounded line.
      this.skipping = this.buffered + rest;
      this.reset();
    } else {
      // Copy: the stream may reuse the chunk's memory.
      this.parts.push(Buffer.from(chunk.subarray(start)));
      this.buffered += rest;
    }
  }

  /**
   * The stream ended. A last line without its `\n` is still a line (a process may die mid-write,
   * and a partial JSON message then fails to parse, which the caller reports).
   */
  end() {
    if (this.skipping) {
      this.onOverflow(this.skipping);
      this.skipping = 0;
    } else if (this.buffered) {
      const line = Buffer.concat(this.parts, this.buffered).toString('utf8');
      this.reset();
      this.emit(line);
    }
  }

  /** @private */
  reset() {
    this.parts = [];
    this.buffered = 0;
  }

  /**
   * @private
   * @param {string} line
   */
  emit(line) {
    this.onLine(line.endsWith('\r') ? line.slice(0, -1) : line);
  }
}

module.exports = { LineSplitter, MAX_LINE_BYTES };
