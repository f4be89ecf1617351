// @ts-check
// The bridge's view of the contract follows ../protocol: the channels it registers, and the
// generated files, whose check fails when the contract changes under them.
'use strict';

const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { test } = require('node:test');
const { IPC_CHANNELS, METHODS, NOTIFICATIONS, PROTOCOL_VERSION } = require('..');
const { tempPaths } = require('./support/harness');

const PROTOCOL = path.resolve(__dirname, '../../protocol');
const GENERATOR = path.resolve(__dirname, '../scripts/generate-protocol.js');
const openrpc = JSON.parse(fs.readFileSync(path.join(PROTOCOL, 'openrpc.json'), 'utf8'));

test('a handler for every import:v2:* and jobs:* method of openrpc.json, and nothing else', () => {
  const expected = openrpc.methods
    .map((/** @type {{name: string}} */ method) => method.name)
    .filter((/** @type {string} */ name) => name.startsWith('import:v2:') || name.startsWith('jobs:'));
  assert.deepEqual([...IPC_CHANNELS].sort(), expected.sort());
  assert.ok(!IPC_CHANNELS.some((channel) => channel.startsWith('sidecar:')), 'the renderer cannot shut the sidecar down');
});

test('the generated names and version are the contract’s', () => {
  assert.equal(PROTOCOL_VERSION, openrpc.info.version);
  assert.deepEqual(METHODS, openrpc.methods.map((/** @type {{name: string}} */ method) => method.name));
  assert.deepEqual(
    NOTIFICATIONS,
    openrpc['x-notifications'].map((/** @type {{name: string}} */ notification) => notification.name),
  );
});

test('the generated files are up to date, and the check fails when the contract drifts', (t) => {
  const fresh = spawnSync(process.execPath, [GENERATOR, '--check'], { encoding: 'utf8' });
  assert.equal(fresh.status, 0, fresh.stderr);

  const { dir } = tempPaths(t);
  const copy = path.join(dir, 'protocol');
  fs.cpSync(PROTOCOL, copy, { recursive: true });
  const file = path.join(copy, 'schemas', 'jobs.retry.result.json');
  const schema = JSON.parse(fs.readFileSync(file, 'utf8'));
  schema.properties.retriedAt = { $ref: 'defs.json#/$defs/IsoDate' };
  fs.writeFileSync(file, JSON.stringify(schema));

  const stale = spawnSync(process.execPath, [GENERATOR, '--check', '--protocol', copy], { encoding: 'utf8' });
  assert.equal(stale.status, 1);
  assert.match(stale.stderr, /types\/protocol\.d\.ts is out of date/);
});
