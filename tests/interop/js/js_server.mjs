#!/usr/bin/env node
// Runs the reference PeerPigeonServer (npm peerpigeon@1.0.6) on loopback, driven by JSON lines.
//
// Arguments:
//   --port N            port to listen on; 0 (the default) picks a free one
//   --host H            bind address (default 127.0.0.1)
//   --hub               run as a hub (isHub: true)
//   --bootstrap URL     bootstrap hub to dial (repeatable; hubs only). Without any, the hub
//                       dials nobody (the reference alone would dial ws://<host>:3000)
//   --hub-peer-id ID    the hub's own 40-hex peer ID (hubs only; default: random)
//   --max-connections N connection cap (default: the reference's 1000)
//   --events SET        which server events to print: default | all | none
//                       (`all` adds bootstrapSignaling, one line per relayed message)
//   --quiet             drop the reference's console output instead of sending it to stderr
//
// stdout: {"event":"listening","port":N,"url":"ws://127.0.0.1:N","host":...,"isHub":...,
//          "hubPeerId":...}, then server events, then command results (see README.md).
// stdin:  {"cmd":"stats"} | {"cmd":"hubStats"} | {"cmd":"peers"} | {"cmd":"stop"} | {"cmd":"quit"}
//         (any command may carry an "id" echoed in its result). EOF or SIGTERM: stop and exit 0.

import net from 'node:net';
import { parseArgs } from 'node:util';

import { emit, onSignals, readCommands, redirectConsole, reply, replyError, withTimeout } from './lib/io.mjs';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    host: { type: 'string', default: '127.0.0.1' },
    hub: { type: 'boolean', default: false },
    bootstrap: { type: 'string', multiple: true, default: [] },
    'hub-peer-id': { type: 'string' },
    'max-connections': { type: 'string' },
    events: { type: 'string', default: 'default' },
    quiet: { type: 'boolean', default: false },
  },
  strict: true,
});

redirectConsole(args.quiet);

const DEFAULT_EVENTS = [
  'peerConnected',
  'peerDisconnected',
  'peerAnnounced',
  'peerGoodbye',
  'hubRegistered',
  'hubUnregistered',
  'bootstrapConnected',
  'bootstrapDisconnected',
  'hubDiscovered',
];

/** Ask the kernel for a free port: the reference treats 0 as "use 3000" and retries upward. */
function freePort(host) {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.unref();
    probe.on('error', reject);
    probe.listen(0, host, () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

const { PeerPigeonServer } = await import('peerpigeon');

let port = Number.parseInt(args.port, 10);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  emit('fatal', { message: `invalid --port ${args.port}` });
  process.exit(2);
}
if (port === 0) port = await freePort(args.host);

const options = {
  port,
  host: args.host,
  isHub: args.hub,
  bootstrapHubs: args.bootstrap,
  // A hub without bootstrap URIs would otherwise dial ws://<host>:3000, which on a shared
  // machine may be somebody else's server.
  autoConnect: args.bootstrap.length > 0,
};
if (args['hub-peer-id']) options.hubPeerId = args['hub-peer-id'];
if (args['max-connections']) options.maxConnections = Number.parseInt(args['max-connections'], 10);

const server = new PeerPigeonServer(options);

// An EventEmitter 'error' without a listener would throw and kill the process.
server.on('error', (error) => emit('serverError', { message: String(error && error.message) }));

const printed = args.events === 'none' ? [] :
  args.events === 'all' ? [...DEFAULT_EVENTS, 'bootstrapSignaling'] : DEFAULT_EVENTS;
/** Close reasons arrive as Buffers from `ws`; print them as text. */
function printable(data) {
  if (data === null || typeof data !== 'object') return { data };
  const fields = { ...data };
  for (const [key, value] of Object.entries(fields)) {
    if (Buffer.isBuffer(value)) fields[key] = value.toString('utf8');
  }
  return fields;
}

for (const name of printed) {
  server.on(name, (data) => emit(name, printable(data)));
}

let stopping = null;
function stop() {
  if (stopping === null) {
    stopping = withTimeout(server.stop(), 5000, 'server.stop()').catch((error) => {
      emit('error', { where: 'stop', message: String(error && error.message) });
    });
  }
  return stopping;
}

onSignals(stop);

try {
  await server.start();
} catch (error) {
  emit('fatal', { message: `server.start() failed: ${error && error.message}` });
  process.exit(1);
}

emit('listening', {
  port: server.port,
  host: server.host,
  url: `ws://${args.host}:${server.port}`,
  isHub: server.isHub,
  hubPeerId: server.hubPeerId ?? null,
});

readCommands(
  async (command) => {
    switch (command.cmd) {
      case 'stats':
        reply(command, server.getStats());
        break;
      case 'hubStats':
        reply(command, server.getHubStats());
        break;
      case 'peers':
        reply(command, server.getPeers());
        break;
      case 'stop':
        await stop();
        reply(command);
        break;
      case 'quit':
        await stop();
        reply(command);
        process.exit(0);
        break;
      default:
        replyError(command, `unknown command ${JSON.stringify(command.cmd)}`);
    }
  },
  async () => {
    await stop();
    process.exit(0);
  },
);
