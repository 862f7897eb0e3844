// Line-oriented JSON I/O shared by the harness scripts.
//
// stdout carries only our own events, one JSON object per line, written through `emit()`.
// Everything the library prints with console.* goes to stderr (or nowhere with `quiet`), so
// stdout stays parseable. stdin carries commands, one JSON object per line.

import { createInterface } from 'node:readline';
import { format } from 'node:util';

const realStdoutWrite = process.stdout.write.bind(process.stdout);

/** JSON.stringify replacer: bytes as base64, BigInt as string, Maps/Sets as plain JSON. */
function replacer(_key, value) {
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Uint8Array) {
    return { $bytes: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64') };
  }
  if (value instanceof ArrayBuffer) return { $bytes: Buffer.from(value).toString('base64') };
  if (value instanceof Map) return Object.fromEntries(value);
  if (value instanceof Set) return Array.from(value);
  if (value instanceof Error) return { name: value.name, message: value.message };
  return value;
}

function serialize(object) {
  try {
    return JSON.stringify(object, replacer);
  } catch (error) {
    // Circular or otherwise unserializable payload: report it rather than crash.
    return JSON.stringify({
      event: object && typeof object.event === 'string' ? object.event : 'unserializable',
      unserializable: String(error && error.message ? error.message : error),
    });
  }
}

/** Print one event: `{"event": name, ...fields, "ts": epoch ms}` on one stdout line. */
export function emit(name, fields = {}) {
  realStdoutWrite(serialize({ ...fields, event: name, ts: Date.now() }) + '\n');
}

/**
 * Keep stdout for events: route console output to stderr, or drop it entirely when quiet.
 * Also catches stray process.stdout.write calls from libraries.
 */
export function redirectConsole(quiet) {
  const toStderr = (...args) => {
    if (!quiet) process.stderr.write(format(...args) + '\n');
  };
  for (const method of ['log', 'info', 'debug', 'warn', 'error', 'trace']) {
    console[method] = toStderr;
  }
  process.stdout.write = (chunk, encoding, callback) => {
    if (quiet) {
      if (typeof encoding === 'function') encoding();
      else if (typeof callback === 'function') callback();
      return true;
    }
    return process.stderr.write(chunk, encoding, callback);
  };
}

/**
 * Read JSON commands from stdin, one per line; call `handler(command)` for each, one at a time
 * in arrival order. Lines that are not JSON objects produce an `error` event. `onEnd` runs at EOF.
 */
export function readCommands(handler, onEnd) {
  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
  let chain = Promise.resolve();
  lines.on('line', (line) => {
    const text = line.trim();
    if (text === '') return;
    let command;
    try {
      command = JSON.parse(text);
    } catch (error) {
      emit('error', { where: 'stdin', message: `invalid JSON: ${error.message}`, line: text });
      return;
    }
    if (command === null || typeof command !== 'object' || Array.isArray(command)) {
      emit('error', { where: 'stdin', message: 'a command must be a JSON object', line: text });
      return;
    }
    chain = chain.then(() => handler(command)).catch((error) => {
      emit('error', { where: 'command', message: String(error && error.message) });
    });
  });
  lines.on('close', () => {
    chain.then(() => onEnd());
  });
}

/** Answer a command: `{"event":"result","cmd":...,"id":...,"ok":true,"value":...}`. */
export function reply(command, value) {
  const fields = { cmd: command.cmd, ok: true };
  if (command.id !== undefined) fields.id = command.id;
  if (value !== undefined) fields.value = value;
  emit('result', fields);
}

/** Report a failed command: `{"event":"result","cmd":...,"id":...,"ok":false,"error":...}`. */
export function replyError(command, error) {
  const fields = { cmd: command.cmd, ok: false, error: String(error && error.message ? error.message : error) };
  if (command.id !== undefined) fields.id = command.id;
  emit('result', fields);
}

/** Run `shutdown` once on SIGTERM/SIGINT/SIGHUP, then exit with `code`. */
export function onSignals(shutdown) {
  let done = false;
  const handle = (signal) => {
    if (done) return;
    done = true;
    Promise.resolve()
      .then(() => shutdown(signal))
      .catch(() => {})
      .finally(() => process.exit(0));
  };
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(signal, handle);
}

/** Resolve a promise, or reject after `ms` milliseconds with a message naming `what`. */
export function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
