#!/usr/bin/env node
// A scripted reference PeerPigeonMesh peer (npm peerpigeon@1.0.6), driven by JSON lines.
//
// Arguments:
//   --url URL          signaling server to connect to (required)
//   --peer-id ID       40-hex peer ID (default: the reference generates one)
//   --network NAME     network namespace (default: the reference's "global")
//   --max-peers N      maxPeers (default: the reference's 3)
//   --min-peers N      minPeers (default: the reference's 2)
//   --no-crypto        enableCrypto: false (default: on, as in the reference)
//   --no-dht           enableWebDHT: false (default: on)
//   --no-auto-connect  autoConnect: false (only connect when told to)
//   --no-global-fallback  allowGlobalFallback: false
//   --debug            turn on the reference's DebugLogger for every module (to stderr)
//   --quiet            drop console output instead of sending it to stderr
//
// stdout: one JSON event per line (see README.md); the first is `ready` once connected to
// signaling, or `fatal` before exiting non-zero.
// stdin: one JSON command per line; EOF, `quit` or SIGTERM disconnect and exit 0.

import { parseArgs } from 'node:util';

import { emit, onSignals, readCommands, redirectConsole, reply, replyError, withTimeout } from './lib/io.mjs';

const { values: args } = parseArgs({
  options: {
    url: { type: 'string' },
    'peer-id': { type: 'string' },
    network: { type: 'string' },
    'max-peers': { type: 'string' },
    'min-peers': { type: 'string' },
    'no-crypto': { type: 'boolean', default: false },
    'no-dht': { type: 'boolean', default: false },
    'no-auto-connect': { type: 'boolean', default: false },
    'no-global-fallback': { type: 'boolean', default: false },
    debug: { type: 'boolean', default: false },
    quiet: { type: 'boolean', default: false },
  },
  strict: true,
});

redirectConsole(args.quiet);

if (!args.url) {
  emit('fatal', { message: '--url is required' });
  process.exit(2);
}

// The reference's Node example installs these globals; PeerPigeon itself builds its links
// through pigeonrtc -> import('@koush/wrtc'), which is our loopback-only wrapper around
// @roamhq/wrtc. The globals use the same wrapper so nothing can leave loopback.
const wrtc = (await import('@koush/wrtc')).default;
const { default: WebSocket } = await import('ws');
globalThis.RTCPeerConnection = wrtc.RTCPeerConnection;
globalThis.RTCSessionDescription = wrtc.RTCSessionDescription;
globalThis.RTCIceCandidate = wrtc.RTCIceCandidate;
globalThis.WebSocket = WebSocket;

const { PeerPigeonMesh, DebugLogger } = await import('peerpigeon');
if (args.debug) DebugLogger.enableAll();

function intOption(name) {
  const text = args[name];
  if (text === undefined) return undefined;
  const value = Number.parseInt(text, 10);
  if (!Number.isInteger(value)) {
    emit('fatal', { message: `invalid --${name} ${text}` });
    process.exit(2);
  }
  return value;
}

const options = { ignoreEnvironmentErrors: true };
if (args['peer-id']) options.peerId = args['peer-id'];
if (args.network) options.networkName = args.network;
const maxPeers = intOption('max-peers');
const minPeers = intOption('min-peers');
if (maxPeers !== undefined) options.maxPeers = maxPeers;
if (minPeers !== undefined) options.minPeers = minPeers;
if (args['no-crypto']) options.enableCrypto = false;
if (args['no-dht']) options.enableWebDHT = false;
if (args['no-auto-connect']) options.autoConnect = false;
if (args['no-global-fallback']) options.allowGlobalFallback = false;

const mesh = new PeerPigeonMesh(options);

// Events forwarded as they come, payload fields merged into the line.
const FORWARDED = [
  'peerDiscovered',
  'peerConnected',
  'peerDisconnected',
  'peerEvicted',
  'messageReceived',
  'binaryMessageReceived',
  'statusChanged',
  'peerKeyAdded',
  'cryptoReady',
  'cryptoError',
  'dhtValueChanged',
];
for (const name of FORWARDED) {
  mesh.addEventListener(name, (data) => {
    emit(name, data !== null && typeof data === 'object' && !Array.isArray(data) ? data : { data });
  });
}

// --- streams (tests/interop/test_streams_interop.py) ---
// Every incoming stream is read to its end; `streamDone` reports its size and sha256.
mesh.addEventListener('streamReceived', async ({ peerId, streamId, stream, metadata }) => {
  const { createHash } = await import('node:crypto');
  const hash = createHash('sha256');
  let size = 0;
  try {
    const reader = stream.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      hash.update(value);
      size += value.byteLength;
    }
    emit('streamDone', { peerId, streamId, size, sha256: hash.digest('hex'), metadata });
  } catch (error) {
    emit('streamFailed', { peerId, streamId, message: String(error && error.message) });
  }
});

let closing = null;
function shutdown() {
  if (closing === null) {
    closing = Promise.resolve().then(() => {
      try {
        mesh.disconnect();
      } catch (error) {
        emit('error', { where: 'disconnect', message: String(error && error.message) });
      }
      // Let the goodbye and the WebSocket close frame leave before the process exits.
      return new Promise((resolve) => setTimeout(resolve, 150));
    });
  }
  return closing;
}

onSignals(shutdown);

function status() {
  return {
    ...mesh.getStatus(),
    connectedPeerIds: mesh.getConnectedPeerIds(),
    discoveredPeerIds: mesh.getDiscoveredPeers().map((peer) => peer.peerId),
  };
}

function describeCandidate(report) {
  if (!report) return null;
  return {
    address: report.address ?? report.ip ?? null,
    port: report.port ?? null,
    protocol: report.protocol ?? null,
    candidateType: report.candidateType ?? null,
  };
}

/** For each peer link: connection state and the selected ICE candidate pair. */
async function transports() {
  const result = [];
  for (const [peerId, peer] of mesh.connectionManager.peers) {
    const connection = peer && peer.connection;
    if (!connection) continue;
    const reports = new Map();
    for (const report of (await connection.getStats()).values()) reports.set(report.id, report);
    let pair = null;
    for (const report of reports.values()) {
      if (report.type === 'transport' && report.selectedCandidatePairId) {
        pair = reports.get(report.selectedCandidatePairId) ?? null;
      }
    }
    if (pair === null) {
      for (const report of reports.values()) {
        if (report.type === 'candidate-pair' && report.nominated && report.state === 'succeeded') {
          pair = report;
          break;
        }
      }
    }
    result.push({
      peerId,
      connectionState: connection.connectionState,
      local: pair ? describeCandidate(reports.get(pair.localCandidateId)) : null,
      remote: pair ? describeCandidate(reports.get(pair.remoteCandidateId)) : null,
    });
  }
  return result;
}

function requireString(command, field) {
  const value = command[field];
  if (typeof value !== 'string' || value === '') {
    throw new Error(`"${field}" must be a non-empty string`);
  }
  return value;
}

async function run(command) {
  switch (command.cmd) {
    case 'send': {
      const to = requireString(command, 'to');
      const messageId = await mesh.sendDirectMessage(to, command.content);
      if (messageId == null) throw new Error(`sendDirectMessage to ${to} returned ${messageId}`);
      return { messageId };
    }
    case 'broadcast': {
      const messageId = await mesh.sendMessage(command.content);
      if (messageId == null) throw new Error(`sendMessage returned ${messageId}`);
      return { messageId };
    }
    case 'sendBinary': {
      // A copy with its own ArrayBuffer: the reference sends a view's whole buffer (W-BIN-1).
      const to = requireString(command, 'to');
      const bytes = new Uint8Array(Buffer.from(requireString(command, 'data'), 'base64'));
      const sent = await mesh.sendBinaryData(to, bytes);
      if (sent !== true) throw new Error(`sendBinaryData to ${to} returned ${sent}`);
      return { size: bytes.byteLength };
    }
    case 'sendStream': {
      // --- streams: `size` bytes of a deterministic pattern (seed), via createStreamToPeer.
      const to = requireString(command, 'to');
      const size = command.size;
      const bytes = new Uint8Array(size);
      for (let i = 0; i < size; i++) bytes[i] = (i * 31 + (command.seed ?? 7)) & 0xff;
      const writable = mesh.createStreamToPeer(to, {
        type: 'file',
        filename: command.filename ?? 'from-js.bin',
        totalSize: size,
      });
      const writer = writable.getWriter();
      for (let at = 0; at < size; at += 262144) await writer.write(bytes.slice(at, at + 262144));
      await writer.close();
      return { size };
    }
    case 'connectToPeer':
      await mesh.connectToPeer(requireString(command, 'peerId'));
      return undefined;
    case 'status':
      return status();
    case 'transports':
      return await transports();
    case 'disconnect':
      mesh.disconnect();
      return undefined;
    case 'connect':
      await withTimeout(mesh.connect(command.url ?? args.url), 15000, 'mesh.connect()');
      return undefined;
    case 'quit':
      await shutdown();
      return undefined;
    default:
      throw new Error(`unknown command ${JSON.stringify(command.cmd)}`);
  }
}

// Commands are read from the start, so that EOF or `quit` during start-up also ends the
// process; they run only once the peer is ready.
let markReady;
const readyGate = new Promise((resolve) => {
  markReady = resolve;
});

readCommands(
  async (command) => {
    await readyGate;
    try {
      reply(command, await run(command));
    } catch (error) {
      replyError(command, error);
    }
    if (command.cmd === 'quit') process.exit(0);
  },
  async () => {
    await shutdown();
    process.exit(0);
  },
);

try {
  await withTimeout(mesh.init(), 20000, 'mesh.init()');
  await withTimeout(mesh.connect(args.url), 15000, 'mesh.connect()');
} catch (error) {
  emit('fatal', { message: String(error && error.message) });
  try {
    mesh.disconnect();
  } catch {
    // nothing more to do
  }
  process.exit(1);
}

emit('ready', { peerId: mesh.peerId, url: args.url, networkName: mesh.networkName });
markReady();
