#!/usr/bin/env node
// @ts-check
// The bridge's added latency per call: round trips through the bridge (an ipcMain handler, and
// request()) against a minimal direct JSON-RPC client over the same kind of pipe, in one run, to
// two sidecars started the same way, alternating call by call. Not a test: prints numbers.
//
//   node bench/latency.js [--calls 2000] [--warmup 300]
'use strict';

const { spawn } = require('node:child_process');
const { performance } = require('node:perf_hooks');
const { createSidecarBridge } = require('..');
const { FakeIpcMain, recordingLogger, sidecarCommand, tempPaths } = require('../test/support/harness');

/** @param {string} name @param {number} fallback */
function option(name, fallback) {
  const at = process.argv.indexOf(`--${name}`);
  return at === -1 ? fallback : Number(process.argv[at + 1]);
}

/**
 * The least a client can do: write a line, split stdout on newlines, match ids.
 * @param {{command: string, args: string[], cwd: string}} sidecar
 */
function directClient(sidecar) {
  const child = spawn(sidecar.command, sidecar.args, { cwd: sidecar.cwd, stdio: ['pipe', 'pipe', 'ignore'] });
  /** @type {Map<number, (message: any) => void>} */
  const pending = new Map();
  let nextId = 1;
  let buffered = '';
  /** @type {(value: unknown) => void} */
  let onReady = () => {};
  const ready = new Promise((resolve) => {
    onReady = resolve;
  });
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (/** @type {string} */ chunk) => {
    buffered += chunk;
    let newline = buffered.indexOf('\n');
    while (newline !== -1) {
      const message = JSON.parse(buffered.slice(0, newline));
      buffered = buffered.slice(newline + 1);
      if (message.method === 'sidecar:ready') onReady(message.params);
      else if (message.id !== undefined) pending.get(message.id)?.(message);
      pending.delete(message.id);
      newline = buffered.indexOf('\n');
    }
  });
  return {
    ready,
    /**
     * @param {string} method
     * @param {unknown[]} params
     */
    request(method, params) {
      const id = nextId++;
      return new Promise((resolve) => {
        pending.set(id, resolve);
        child.stdin.write(`${JSON.stringify({ jsonrpc: '2.0', id, method, params })}\n`);
      });
    },
    close() {
      child.stdin.end();
      return new Promise((resolve) => child.once('exit', resolve));
    },
  };
}

/** @param {number[]} samples @param {number} q */
function quantile(samples, q) {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

/** @param {number} ms */
const us = (ms) => `${(ms * 1000).toFixed(0).padStart(6)} µs`;

async function main() {
  const calls = option('calls', 2000);
  const warmup = option('warmup', 300);
  /** @type {Array<() => void>} */
  const cleanups = [];
  const scope = { after: (/** @type {() => void} */ fn) => cleanups.push(fn) };

  const ipcMain = new FakeIpcMain();
  const bridge = createSidecarBridge({ ...sidecarCommand(tempPaths(scope)), ipcMain, logger: recordingLogger() });
  const direct = directClient(sidecarCommand(tempPaths(scope)));
  await Promise.all([bridge.ready, direct.ready]);

  /** @type {Record<string, () => Promise<unknown>>} */
  const paths = {
    'import:v2:status via ipcMain handler': () => ipcMain.invoke('import:v2:status'),
    'import:v2:status direct client': () => direct.request('import:v2:status', []),
    'sidecar:info via bridge.request': () => bridge.request('sidecar:info', []),
    'sidecar:info direct client': () => direct.request('sidecar:info', []),
  };
  /** @type {Record<string, number[]>} */
  const samples = Object.fromEntries(Object.keys(paths).map((name) => [name, []]));
  const names = Object.keys(paths);
  for (let round = 0; round < warmup + calls; round += 1) {
    // Alternate the order so neither side always runs first.
    const order = round % 2 ? names : [...names].reverse();
    for (const name of order) {
      const began = performance.now();
      await paths[name]();
      if (round >= warmup) samples[name].push(performance.now() - began);
    }
  }

  await Promise.all([bridge.dispose(), direct.close()]);
  for (const cleanup of cleanups) cleanup();

  process.stdout.write(`${calls} calls each after ${warmup} warm-up, Node ${process.version}, ${process.platform}\n\n`);
  process.stdout.write(`${'path'.padEnd(40)}      p50        p99\n`);
  for (const name of names) {
    process.stdout.write(`${name.padEnd(40)} ${us(quantile(samples[name], 0.5))} ${us(quantile(samples[name], 0.99))}\n`);
  }
  for (const method of ['import:v2:status', 'sidecar:info']) {
    const [viaBridge, viaDirect] = names.filter((name) => name.startsWith(method));
    const added = quantile(samples[viaBridge], 0.5) - quantile(samples[viaDirect], 0.5);
    const added99 = quantile(samples[viaBridge], 0.99) - quantile(samples[viaDirect], 0.99);
    process.stdout.write(`\n${method}: the bridge adds ${us(added).trim()} at p50, ${us(added99).trim()} at p99 (target p50 ≤ 1 ms)`);
  }
  process.stdout.write('\n');
}

main().catch((error) => {
  process.stderr.write(`${error.stack ?? error}\n`);
  process.exitCode = 1;
});
