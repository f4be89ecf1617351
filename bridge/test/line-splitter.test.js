// @ts-check
'use strict';

const assert = require('node:assert/strict');
const { test } = require('node:test');
const { LineSplitter, MAX_LINE_BYTES } = require('../lib/line-splitter');

/** @param {{maxLineBytes?: number}} [options] */
function collect(options = {}) {
  /** @type {string[]} */
  const lines = [];
  /** @type {number[]} */
  const overflows = [];
  const splitter = new LineSplitter({
    ...options,
    onLine: (line) => lines.push(line),
    onOverflow: (bytes) => overflows.push(bytes),
  });
  return { splitter, lines, overflows };
}

test('the cap is the protocol’s 16 MiB', () => {
  assert.equal(MAX_LINE_BYTES, 16 * 1024 * 1024);
});

test('lines split across chunks and several lines in one chunk', () => {
  const { splitter, lines } = collect();
  splitter.push(Buffer.from('{"a":1}\n{"b"'));
  splitter.push(Buffer.from(':2}\n{"c":3}\n{"d"'));
  splitter.push(Buffer.from(':4}\n'));
  assert.deepEqual(lines, ['{"a":1}', '{"b":2}', '{"c":3}', '{"d":4}']);
});

test('a UTF-8 character split between chunks is decoded whole', () => {
  const { splitter, lines } = collect();
  const bytes = Buffer.from('"Zoë 📷"\n');
  for (const byte of bytes) splitter.push(Buffer.from([byte]));
  assert.deepEqual(lines, ['"Zoë 📷"']);
});

test('a chunk reused by the stream after push does not corrupt the buffered part', () => {
  const { splitter, lines } = collect();
  const chunk = Buffer.from('abc');
  splitter.push(chunk);
  chunk.write('xyz');
  splitter.push(Buffer.from('def\n'));
  assert.deepEqual(lines, ['abcdef']);
});

test('an over-long line is dropped, reported once, and the next line still arrives', () => {
  const { splitter, lines, overflows } = collect({ maxLineBytes: 10 });
  splitter.push(Buffer.from('0123456789'));
  splitter.push(Buffer.from('ABCDEFGHIJ'));
  splitter.push(Buffer.from('KLM\nok\n'));
  assert.deepEqual(lines, ['ok']);
  assert.deepEqual(overflows, [23]);
  // Exactly at the cap is fine; one over is not, also when it arrives in one chunk.
  splitter.push(Buffer.from('0123456789\n0123456789X\nnext\n'));
  assert.deepEqual(lines, ['ok', '0123456789', 'next']);
  assert.deepEqual(overflows, [23, 11]);
});

test('memory stays bounded while skipping an endless line', () => {
  const { splitter, overflows } = collect({ maxLineBytes: 1024 });
  for (let i = 0; i < 100; i += 1) splitter.push(Buffer.alloc(1000, 0x61));
  assert.ok(splitter.buffered <= 1024, `buffered ${splitter.buffered}`);
  splitter.push(Buffer.from('\n'));
  assert.deepEqual(overflows, [100_000]);
});

test('end() flushes a last line without its newline; CRLF loses its CR', () => {
  const { splitter, lines } = collect();
  splitter.push(Buffer.from('one\r\ntwo'));
  splitter.end();
  assert.deepEqual(lines, ['one', 'two']);
});
