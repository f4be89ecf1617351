// @ts-check
// au-sidecar-bridge: what Electron's main process requires to run the Python sidecar. The bridge
// itself is lib/bridge.js; the wire types are types/protocol.d.ts, generated from ../protocol.
'use strict';

const { createSidecarBridge, IPC_CHANNELS, MAPPED_CHANNELS } = require('./lib/bridge');
const { SidecarRpcError, SidecarExitedError, SidecarUnavailableError } = require('./lib/errors');
const { PROTOCOL_VERSION, METHODS, NOTIFICATIONS, ERRORS } = require('./lib/protocol.generated');

/**
 * @typedef {import('./lib/bridge').SidecarBridge} SidecarBridge
 * @typedef {import('./lib/bridge').SidecarBridgeOptions} SidecarBridgeOptions
 * @typedef {import('./lib/bridge').BridgeEvents} BridgeEvents
 * @typedef {import('./lib/bridge').IpcMainLike} IpcMainLike
 * @typedef {import('./lib/bridge').WindowLike} WindowLike
 * @typedef {import('./lib/logger').Logger} Logger
 */

module.exports = {
  createSidecarBridge,
  IPC_CHANNELS,
  MAPPED_CHANNELS,
  SidecarRpcError,
  SidecarExitedError,
  SidecarUnavailableError,
  PROTOCOL_VERSION,
  METHODS,
  NOTIFICATIONS,
  ERRORS,
};
