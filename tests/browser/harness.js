// What the browser tests share: the real server binary, Debian's Chromium driven by
// playwright-core, and helpers that look at a page the way a person would (tiles, names,
// indicators) and measure what its media connection receives; for several nodes, a throwaway
// Redis and Caddy as their front door.
//
// Every wait is a condition with a deadline; nothing sleeps for a fixed time.

import { execFile, spawn } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import dgram from 'node:dgram';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repository = path.resolve(here, '..', '..');
export const artifacts = path.join(repository, 'artifacts');

/** The server binary; `cargo build` makes it. */
const SERVER_BINARY = process.env.SWITCHYARD_BIN ?? path.join(repository, 'target', 'debug', 'switchyard');
/** The load test binary; `cargo build` makes it next to the server's. */
export const LOADTEST_BINARY = process.env.LOADTEST_BIN ?? path.join(path.dirname(SERVER_BINARY), 'loadtest');
/** Debian's Chromium. */
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
/** Debian's coturn. */
const TURNSERVER = process.env.TURNSERVER ?? '/usr/bin/turnserver';

/**
 * A small camera picture keeps six pages within two cores: each page encodes one stream and
 * decodes five.
 */
export const TEST_VIDEO = '320x180@15';

/** Chromium's flags: fake camera, microphone and screen, loopback ICE, and no calls home. */
const CHROMIUM_FLAGS = [
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--allow-loopback-in-peer-connection',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-quic',
  '--no-first-run',
  '--disable-dev-shm-usage',
  // A page in the background must keep its timers and media running at full speed.
  '--disable-background-timer-throttling',
  '--disable-renderer-backgrounding',
  '--disable-backgrounding-occluded-windows',
];

/** The server's own account (its REMBs to publishers included), and the stack's warnings. */
const SERVER_LOG_FILTER = 'info,switchyard=debug,webrtc=warn,rtc=warn,rtc_ice=error,rtc_dtls=error,rtc_srtp=warn';

/**
 * Starts the server on an ephemeral loopback port; resolves with {url, stop, metrics, ...}.
 * Its log includes the bitrate caps it sends publishers (`bitrateCapsSent`), and is saved as
 * `artifacts/<name>.server.log` when the server stops.
 */
export async function startServer(name, { extraArgs = [] } = {}) {
  if (!existsSync(SERVER_BINARY)) throw new Error(`no server binary at ${SERVER_BINARY}: run \`cargo build\` first`);
  // SWITCHYARD_CLIENT_DIR serves the client from a folder instead of the copy in the binary,
  // to try a change to the client without building again.
  const clientDir = process.env.SWITCHYARD_CLIENT_DIR ? ['--client-dir', process.env.SWITCHYARD_CLIENT_DIR] : [];
  const child = spawn(SERVER_BINARY, ['--http', '127.0.0.1:0', '--media-ip', '127.0.0.1', '--media-udp-port', '0', '--media-tcp-port', '0', ...clientDir, ...extraArgs], {
    env: { ...process.env, NO_COLOR: '1', RUST_LOG: process.env.RUST_LOG ?? SERVER_LOG_FILTER },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log = [];
  const address = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the server did not start:\n${log.join('')}`)), 20_000);
    const onData = (chunk) => {
      // Without colour codes, so the log reads well in a test report.
      const text = chunk.toString().replace(/\x1b\[[0-9;]*m/g, '');
      log.push(text);
      // The start line: "... switchyard is serving ... http=127.0.0.1:PORT ..."
      const match = /http=(127\.0\.0\.1:\d+)/.exec(log.join(''));
      if (match) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the server exited with ${code}:\n${log.join('')}`));
    });
  });
  const url = `http://${address}`;
  const exited = new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve({ code: child.exitCode, signal: child.signalCode });
    else child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  return {
    url,
    log,
    /** The process id, to signal the server the way an operator or a crash would. */
    pid: child.pid,
    /** Resolves with {code, signal} once the process has exited. */
    exited,
    /** Whether the process is still running. */
    get running() {
      return child.exitCode === null && child.signalCode === null;
    },
    /** The node id the start line names (`node=<id>`), in a cluster; null otherwise. */
    get nodeId() {
      return /switchyard is serving[^\n]*\bnode=(\S+)/.exec(log.join(''))?.[1] ?? null;
    },
    /** The cluster as this node reads it from Redis (`GET /api/cluster`); throws unless 200. */
    async cluster() {
      const response = await fetch(`${url}/api/cluster`);
      if (!response.ok) throw new Error(`GET /api/cluster: ${response.status} ${await response.text()}`);
      return response.json();
    },
    async metrics() {
      const response = await fetch(`${url}/metrics`);
      const values = {};
      for (const line of (await response.text()).split('\n')) {
        const match = /^(switchyard_\w+) (\d+)$/.exec(line);
        if (match) values[match[1]] = Number(match[2]);
      }
      return values;
    },
    /**
     * The series of one metric with labels: [{labels: {name: value}, value}]. (`metrics()`
     * reads the ones without.)
     */
    async metricSeries(metric) {
      const response = await fetch(`${url}/metrics`);
      const series = [];
      for (const line of (await response.text()).split('\n')) {
        const match = /^(\w+)\{([^}]*)\} (\S+)$/.exec(line);
        if (!match || match[1] !== metric) continue;
        const labels = {};
        for (const [, key, value] of match[2].matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[key] = value;
        series.push({ labels, value: Number(match[3]) });
      }
      return series;
    },
    /** The bitrate caps (REMB) the server has sent `participant`, oldest first. */
    bitrateCapsSent(participant) {
      const caps = [];
      const pattern = /participant=(PA_\w+)[^\n]*sent the publisher a bitrate cap bitrate=(\d+)/g;
      for (const match of log.join('').matchAll(pattern)) {
        if (match[1] === participant) caps.push(Number(match[2]));
      }
      return caps;
    },
    async counts() {
      return (await fetch(`${url}/api/counts`)).json();
    },
    /** Sends SIGTERM, waits for the exit, saves the log; resolves with {code, signal}. */
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
      await mkdir(artifacts, { recursive: true });
      await writeFile(path.join(artifacts, `${name}.server.log`), log.join(''));
      return { code: child.exitCode, signal: child.signalCode };
    },
  };
}

/**
 * Launches Chromium. With `askForPermission`, camera and microphone access follow the
 * permissions a context is given, instead of being granted to every page: a page of such a
 * browser is refused what its context was not granted, as when a person clicks "Block".
 * `args` are added to this browser's command line only.
 */
export function launchBrowser({ askForPermission = false, args = [] } = {}) {
  const flags = askForPermission ? CHROMIUM_FLAGS.filter((flag) => flag !== '--use-fake-ui-for-media-stream') : CHROMIUM_FLAGS;
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: [...flags, ...args] });
}

/**
 * Writes a mono 16-bit 48 kHz WAV file of `seconds` of `sample(t)` (t in seconds, values in
 * -1..1), for Chromium's `--use-file-for-fake-audio-capture`, which loops it.
 */
export async function writeWav(file, seconds, sample) {
  const rate = 48_000;
  const count = Math.round(seconds * rate);
  const data = Buffer.alloc(count * 2);
  for (let index = 0; index < count; index += 1) {
    const value = Math.max(-1, Math.min(1, sample(index / rate)));
    data.writeInt16LE(Math.round(value * 32767), index * 2);
  }
  const header = Buffer.alloc(44);
  header.write('RIFF', 0);
  header.writeUInt32LE(36 + data.length, 4);
  header.write('WAVE', 8);
  header.write('fmt ', 12);
  header.writeUInt32LE(16, 16); // the format chunk's size
  header.writeUInt16LE(1, 20); // PCM
  header.writeUInt16LE(1, 22); // one channel
  header.writeUInt32LE(rate, 24);
  header.writeUInt32LE(rate * 2, 28); // bytes a second
  header.writeUInt16LE(2, 32); // bytes a frame
  header.writeUInt16LE(16, 34); // bits a sample
  header.write('data', 36);
  header.writeUInt32LE(data.length, 40);
  await writeFile(file, Buffer.concat([header, data]));
  return file;
}

/**
 * Runs in every page before the client: keeps each WebSocket the page opens in
 * `window.testSockets`, so a test can drop one the way a network would, and can hold back what
 * the server says (`window.testHold = true`), see what it held (`window.testHeld()`, the
 * messages' types) and deliver it later, in order (`window.testRelease()`), to make messages
 * cross. `window.testSent` lists what the page sent ({at, message}, `at` from
 * `performance.now()`), and `window.testDeliver(message)` hands the page a message as if the
 * server had sent it on its latest socket.
 */
function recordWebSockets() {
  const Native = window.WebSocket;
  window.testSockets = [];
  window.testSent = [];
  window.testHold = false;
  const held = [];
  window.testHeld = () => held.map(({ type }) => type);
  window.testRelease = () => {
    window.testHold = false;
    for (const { deliver } of held.splice(0)) deliver();
  };
  window.testDeliver = (message) => {
    const socket = window.testSockets.at(-1);
    const event = new MessageEvent('message', { data: JSON.stringify(message) });
    for (const listener of socket.testListeners) listener.call(socket, event);
  };
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.testListeners = [];
      window.testSockets.push(this);
    }

    send(data) {
      try {
        window.testSent.push({ at: performance.now(), message: JSON.parse(data) });
      } catch { /* not JSON: not ours to record */ }
      return super.send(data);
    }

    addEventListener(type, listener, options) {
      if (type !== 'message') return super.addEventListener(type, listener, options);
      this.testListeners.push(listener);
      return super.addEventListener(type, (event) => {
        if (window.testHold || held.length > 0) {
          let type = null;
          try { type = JSON.parse(event.data).type; } catch { /* not JSON: keep it as it is */ }
          held.push({ type, deliver: () => listener.call(this, event) });
        } else {
          listener.call(this, event);
        }
      }, options);
    }
  };
}

/** Runs in a page before the client: there is no camera or microphone to be had. */
function withoutDevices() {
  navigator.mediaDevices.getUserMedia = async () => {
    throw new DOMException('Requested device not found', 'NotFoundError');
  };
}

/**
 * Opens the client in a new browser context with `room` and `name` in the URL, and waits for
 * the join screen to be ready (the preview, or the message saying why there is none).
 * `permissions` lists what the page is allowed (`camera`, `microphone`) in a browser launched
 * with `askForPermission`; in others every page is allowed both. `noDevices` makes the page a
 * computer with neither camera nor microphone. `params` adds URL parameters (`token`,
 * `relay`); `room` and `name` may then be left out, for the page to take them from the token.
 * `page.errors` collects the page's uncaught errors and Content-Security-Policy violations.
 */
export async function openClient(browser, server, {
  room, name, permissions, noDevices = false, viewport = { width: 960, height: 600 }, params = {},
}) {
  const context = await browser.newContext({ viewport, permissions });
  await context.addInitScript(recordWebSockets);
  if (noDevices) await context.addInitScript(withoutDevices);
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (error) => errors.push(error));
  // What the Content-Security-Policy blocks shows only on the console: a violation is an error too.
  page.on('console', (message) => {
    if (message.type() === 'error' && /Content Security Policy/i.test(message.text())) errors.push(new Error(message.text()));
  });
  page.errors = errors;
  const url = new URL(server.url);
  if (room !== undefined) url.searchParams.set('room', room);
  if (name !== undefined) url.searchParams.set('name', name);
  url.searchParams.set('video', TEST_VIDEO);
  for (const [key, value] of Object.entries(params)) url.searchParams.set(key, value);
  await page.goto(url.href);
  await page.waitForFunction(() => {
    const media = window.switchyard?.media;
    return media && (media.camera || media.problems.video) && (media.microphone || media.problems.audio);
  });
  return page;
}

/** Clicks "Join room" and waits until the page has joined. */
export async function join(page) {
  await page.getByRole('button', { name: 'Join room' }).click();
  await page.waitForFunction(() => window.switchyard.call?.state === 'joined');
  return page;
}

/** Opens the client and joins. */
export async function joinRoom(browser, server, options) {
  return join(await openClient(browser, server, options));
}

/** The participant id a page has in its current membership. */
export function participantId(page) {
  return page.evaluate(() => window.switchyard.call?.self ?? null);
}

/**
 * The types of the local and remote candidates of the pair a page's media connection uses
 * (`host`, `srflx`, `relay`), its protocol (`udp`, `tcp`) and, for a relayed candidate, how the
 * page reaches its TURN server (`relayProtocol`: `udp`, `tcp` or `tls`), or null before one is
 * selected.
 */
export function selectedCandidateTypes(page) {
  return page.evaluate(async () => {
    const connection = window.switchyard.call?.connection;
    if (!connection) return null;
    const report = await connection.peerConnection.getStats();
    const byId = new Map();
    report.forEach((stats) => byId.set(stats.id, stats));
    for (const stats of byId.values()) {
      if (stats.type !== 'transport' || !stats.selectedCandidatePairId) continue;
      const pair = byId.get(stats.selectedCandidatePairId);
      const local = byId.get(pair?.localCandidateId);
      const remote = byId.get(pair?.remoteCandidateId);
      if (local && remote) {
        return {
          local: local.candidateType,
          remote: remote.candidateType,
          protocol: local.protocol,
          relayProtocol: local.relayProtocol ?? null,
          state: pair.state,
        };
      }
    }
    return null;
  });
}

/**
 * Mints an access token with the server binary's `token` command:
 * `mintToken(key, {room, identity, name, grants: ['publish', ...], ttl})`. Without `grants`
 * the token grants everything.
 */
export async function mintToken(key, { room, identity, name, grants = [], ttl }) {
  const args = ['token', '--room', room, '--identity', identity];
  if (name !== undefined) args.push('--name', name);
  for (const grant of grants) args.push(`--${grant}`);
  if (ttl !== undefined) args.push('--ttl', String(ttl));
  const { stdout } = await promisify(execFile)(SERVER_BINARY, args, {
    env: { ...process.env, SWITCHYARD_AUTH_TOKEN_KEY: key },
  });
  return stdout.trim();
}

/** A free UDP port on loopback, for a server the test starts. */
async function freeUdpPort() {
  const socket = dgram.createSocket('udp4');
  await new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, '127.0.0.1', resolve);
  });
  const { port } = socket.address();
  await new Promise((resolve) => socket.close(resolve));
  return port;
}

/** Whether a STUN server answers a binding request at 127.0.0.1:`port` within `timeout` ms. */
async function answersStun(port, timeout) {
  const socket = dgram.createSocket('udp4');
  try {
    // A binding request: type 0x0001, no attributes, the magic cookie, a transaction id.
    const request = Buffer.alloc(20);
    request.writeUInt16BE(0x0001, 0);
    request.writeUInt32BE(0x2112a442, 4);
    for (let index = 8; index < 20; index += 1) request[index] = Math.floor(Math.random() * 256);
    const answered = new Promise((resolve) => {
      socket.on('message', (message) => resolve(message.length >= 20 && message.readUInt16BE(0) === 0x0101
        && message.subarray(8, 20).equals(request.subarray(8, 20))));
      setTimeout(() => resolve(false), timeout);
    });
    socket.send(request, port, '127.0.0.1');
    return await answered;
  } finally {
    socket.close();
  }
}

/**
 * A self-signed certificate for 127.0.0.1 made with openssl in `directory`: resolves with
 * {cert, key} (the files) and `spki`, the base64 SHA-256 of its public key, the form Chromium's
 * `--ignore-certificate-errors-spki-list` takes.
 */
export async function makeTestCertificate(directory, name) {
  const cert = path.join(directory, `${name}.crt`);
  const key = path.join(directory, `${name}.key`);
  await promisify(execFile)('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', cert, '-days', '2', '-subj', `/CN=${name}`,
    '-addext', 'subjectAltName=IP:127.0.0.1',
  ]);
  const publicKey = new X509Certificate(await readFile(cert)).publicKey.export({ type: 'spki', format: 'der' });
  return { cert, key, spki: createHash('sha256').update(publicKey).digest('base64') };
}

/** A free TCP port on loopback, for a server the test starts. */
async function freeTcpPort() {
  const server = net.createServer();
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * Whether a TLS server at 127.0.0.1:`port` completes a handshake within `timeout` ms, showing
 * the certificate in the PEM file `cert`.
 */
async function answersTls(port, cert, timeout) {
  const expected = new X509Certificate(await readFile(cert)).fingerprint256;
  return new Promise((resolve) => {
    // The certificate is compared below: the handshake itself need not trust it.
    const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, timeout });
    const finish = (result) => {
      socket.destroy();
      resolve(result);
    };
    socket.once('secureConnect', () => finish(socket.getPeerX509Certificate()?.fingerprint256 === expected));
    socket.once('timeout', () => finish(false));
    socket.once('error', () => finish(false));
  });
}

/**
 * Starts Debian's coturn on 127.0.0.1 with a shared secret (`use-auth-secret`), the way a
 * deployment runs it next to Switchyard, and waits until it answers. Resolves with
 * {url, secret, stop, log}; its log is saved as `artifacts/<name>.turnserver.log` when it stops.
 *
 * With `maxBps`, coturn caps each relayed session at that many bytes a second. With `tls`
 * ({cert, key}, PEM files) it listens for TURN over TLS only (no plain UDP or TCP
 * listener), and `url` is its `turns:` URL; `log()` reads its log so far.
 */
export async function startTurnServer(name, { secret, maxBps, tls: tlsFiles = null }) {
  if (!existsSync(TURNSERVER)) throw new Error(`no TURN server at ${TURNSERVER}: install Debian's coturn`);
  const directory = await mkdtemp(path.join(os.tmpdir(), 'switchyard-turn-'));
  const port = tlsFiles ? await freeTcpPort() : await freeUdpPort();
  const logFile = path.join(directory, 'turnserver.log');
  const listeners = tlsFiles
    ? [
      // The TLS listener alone: a client reaches this server over TLS or not at all.
      `tls-listening-port=${port}`,
      `cert=${tlsFiles.cert}`,
      `pkey=${tlsFiles.key}`,
      'no-udp',
      'no-tcp',
    ]
    : [`listening-port=${port}`, 'no-tls'];
  const config = [
    `listening-ip=127.0.0.1`,
    `relay-ip=127.0.0.1`,
    ...listeners,
    // The relay and the media server share loopback, which coturn refuses by default.
    'allow-loopback-peers',
    'use-auth-secret',
    `static-auth-secret=${secret}`,
    'realm=switchyard.test',
    'fingerprint',
    'no-dtls',
    'no-cli',
    'no-multicast-peers',
    `pidfile=${path.join(directory, 'turnserver.pid')}`,
    `userdb=${path.join(directory, 'turndb')}`,
    `log-file=${logFile}`,
    'simple-log',
    'verbose',
    // A real weak link: coturn caps each relayed session at this many bytes a second.
    ...(maxBps ? [`max-bps=${maxBps}`] : []),
  ].join('\n');
  const configFile = path.join(directory, 'turnserver.conf');
  await writeFile(configFile, `${config}\n`);
  const child = spawn(TURNSERVER, ['-c', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  const output = [];
  child.stdout.on('data', (chunk) => output.push(chunk.toString()));
  child.stderr.on('data', (chunk) => output.push(chunk.toString()));
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const log = async () => `${output.join('')}${await readFile(logFile, 'utf8').catch(() => '')}`;
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await exited;
    }
    await mkdir(artifacts, { recursive: true });
    await writeFile(path.join(artifacts, `${name}.turnserver.log`), await log());
    await rm(directory, { recursive: true, force: true });
  };
  const answers = () => (tlsFiles ? answersTls(port, tlsFiles.cert, 200) : answersStun(port, 200));
  const deadline = Date.now() + 10_000;
  while (!(await answers())) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`the TURN server did not start on port ${port}: see artifacts/${name}.turnserver.log`);
    }
  }
  const url = tlsFiles ? `turns:127.0.0.1:${port}?transport=tcp` : `turn:127.0.0.1:${port}`;
  return { url, port, secret, stop, log };
}

/** The publisher's `availableOutgoingBitrate`: its congestion controller's current target. */
export function availableOutgoingBitrate(page) {
  return page.evaluate(async () => {
    const report = await window.switchyard.call.connection.peerConnection.getStats();
    let bitrate = null;
    report.forEach((stats) => {
      if (stats.type === 'candidate-pair' && stats.nominated && stats.state === 'succeeded') {
        bitrate = stats.availableOutgoingBitrate ?? null;
      }
    });
    return bitrate;
  });
}

/** The remote tiles a page shows: [{key, participant, name, kind, micMuted, cameraOff, videoMid, audioMid}]. */
export function remoteTiles(page) {
  return page.$$eval('.tile[data-remote]', (tiles) => tiles.map((tile) => ({
    key: tile.dataset.key,
    participant: tile.dataset.participant,
    kind: tile.dataset.kind,
    name: tile.querySelector('.name').textContent,
    micMuted: tile.querySelector('.indicator.mic-off').checkVisibility(),
    cameraOff: tile.querySelector('.indicator.camera-off').checkVisibility(),
    videoMid: tile.dataset.videoMid ?? null,
    audioMid: tile.dataset.audioMid ?? null,
  })));
}

/**
 * What `page` receives of the video in `participant`'s person tile (or the tile `key`):
 * {frameWidth, frameHeight, framesDecoded, packetsReceived, freezeCount,
 * totalFreezesDuration, shown}, `shown` being whether the tile is on screen; null before the
 * tile has a received video.
 */
export function receivedVideo(page, { participant, key }) {
  return page.evaluate(async ({ participant: id, key: wanted }) => {
    const selector = wanted ? `.tile[data-remote][data-key="${wanted}"]` : `.tile[data-remote][data-kind="person"][data-participant="${id}"]`;
    const tile = document.querySelector(selector);
    const connection = window.switchyard.call?.connection;
    if (!tile || !tile.dataset.videoMid || !connection) return null;
    const report = await connection.peerConnection.getStats();
    let found = null;
    report.forEach((stats) => {
      if (stats.type === 'inbound-rtp' && stats.mid === tile.dataset.videoMid) found = stats;
    });
    if (!found) return null;
    return {
      frameWidth: found.frameWidth ?? 0,
      frameHeight: found.frameHeight ?? 0,
      framesDecoded: found.framesDecoded ?? 0,
      packetsReceived: found.packetsReceived ?? 0,
      freezeCount: found.freezeCount ?? 0,
      totalFreezesDuration: found.totalFreezesDuration ?? 0,
      shown: tile.checkVisibility(),
    };
  }, { participant, key });
}

/**
 * The simulcast layers `page` sends of its camera, by rid: {[rid]: {frameWidth, frameHeight,
 * framesEncoded, bytesSent, active}}. A camera sent without simulcast shows under ''.
 */
export function sentCameraLayers(page) {
  return page.evaluate(async () => {
    const { call, media } = window.switchyard;
    const pc = call?.connection?.peerConnection;
    if (!pc || !media.camera) return {};
    const transceiver = pc.getTransceivers().find((candidate) => candidate.sender.track === media.camera);
    if (!transceiver) return {};
    const report = await pc.getStats();
    const layers = {};
    report.forEach((stats) => {
      if (stats.type !== 'outbound-rtp' || stats.kind !== 'video' || stats.mid !== transceiver.mid) return;
      layers[stats.rid ?? ''] = {
        frameWidth: stats.frameWidth ?? 0,
        frameHeight: stats.frameHeight ?? 0,
        framesEncoded: stats.framesEncoded ?? 0,
        bytesSent: stats.bytesSent ?? 0,
        active: stats.active ?? true,
      };
    });
    return layers;
  });
}

/** Waits until `page` shows exactly `count` remote tiles. */
export async function waitForRemoteTiles(page, count, timeout) {
  await page.waitForFunction(
    (expected) => document.querySelectorAll('.tile[data-remote]').length === expected,
    count,
    { timeout },
  );
}

/**
 * For each remote tile, what its media connection has received so far for the tile's video
 * (`framesDecoded`; for diagnosis also packets, keyframes, losses, NACKs, PLIs and freezes) and
 * audio (`packetsReceived`) mids: {[tileKey]: {hasVideo, hasAudio, frames, videoPackets,
 * keyFrames, videoLost, nacks, plis, freezes, audioPackets}}.
 */
export function tileMedia(page) {
  return page.evaluate(async () => {
    const connection = window.switchyard.call?.connection;
    if (!connection) return {};
    const report = await connection.peerConnection.getStats();
    const byMid = new Map();
    report.forEach((stats) => {
      if (stats.type === 'inbound-rtp' && stats.mid !== undefined) byMid.set(stats.mid, stats);
    });
    const result = {};
    for (const tile of document.querySelectorAll('.tile[data-remote]')) {
      const video = byMid.get(tile.dataset.videoMid);
      const audio = byMid.get(tile.dataset.audioMid);
      result[tile.dataset.key] = {
        hasVideo: tile.dataset.videoMid !== undefined,
        hasAudio: tile.dataset.audioMid !== undefined,
        frames: video?.framesDecoded ?? 0,
        videoPackets: video?.packetsReceived ?? 0,
        keyFrames: video?.keyFramesDecoded ?? 0,
        videoLost: video?.packetsLost ?? 0,
        nacks: video?.nackCount ?? 0,
        plis: video?.pliCount ?? 0,
        freezes: video?.freezeCount ?? 0,
        audioPackets: audio?.packetsReceived ?? 0,
      };
    }
    return result;
  });
}

/**
 * Waits until every remote tile of `page` (at least `count` of them) plays: at one look each
 * tile has decoded video frames and received audio packets (unless `audio` is false), and at
 * the next look it has more of both. Media is flowing now, not just once. A tile must have
 * both, unless `ifPresent`: then a tile plays what it has (a person without a camera has no
 * video).
 */
export async function waitForFlowingMedia(page, { count, audio = true, ifPresent = false, timeout }) {
  const deadline = Date.now() + timeout;
  const plays = (present, more) => (present ? more : ifPresent);
  const started = (look) => {
    const keys = Object.keys(look);
    return keys.length >= count && keys.every((key) => plays(look[key].hasVideo, look[key].frames > 0)
      && (!audio || plays(look[key].hasAudio, look[key].audioPackets > 0)));
  };
  const rose = (before, after) => Object.keys(after).length >= count && Object.keys(after).every((key) => before[key]
    && plays(after[key].hasVideo, after[key].frames > before[key].frames)
    && (!audio || plays(after[key].hasAudio, after[key].audioPackets > before[key].audioPackets)));
  // For the failure message: each look's decoded frames, video packets and audio packets per
  // tile, to tell a tile that froze from one that never started or a page too starved to decode.
  const looks = [];
  const begun = Date.now();
  let baseline = null;
  let last = {};
  while (Date.now() < deadline) {
    last = await tileMedia(page);
    looks.push(`${Date.now() - begun}ms ${Object.values(last).map((tile) => `${tile.frames}/${tile.videoPackets}/${tile.audioPackets}`).join(' ')}`);
    if (baseline && started(baseline) && rose(baseline, last)) return last;
    // Measure from this look on until every tile has started, and again when a tile appears;
    // otherwise keep the baseline, so that a slow tile's frames add up between looks.
    const newTile = baseline && Object.keys(last).some((key) => !(key in baseline));
    if (!baseline || !started(baseline) || newTile) baseline = last;
    await page.waitForTimeout(300); // the polling interval
  }
  throw new Error(`media did not flow on ${count} tiles within ${timeout} ms: ${JSON.stringify(last)}\n`
    + `frames/video packets/audio packets per tile at each look:\n${looks.join('\n')}`);
}

/** Saves a screenshot under artifacts/. */
export async function screenshot(page, name) {
  await mkdir(artifacts, { recursive: true });
  const file = path.join(artifacts, name);
  await page.screenshot({ path: file });
  return file;
}

/** Polls `probe` until it returns a truthy value, or fails after `timeout` ms with `what`. */
export async function eventually(what, probe, { timeout = 10_000, interval = 200 } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  while (Date.now() < deadline) {
    last = await probe();
    if (last) return last;
    await new Promise((resolve) => setTimeout(resolve, interval));
  }
  throw new Error(`timed out after ${timeout} ms waiting for ${what} (last: ${JSON.stringify(last)})`);
}

/** Debian's Redis server and its command-line client. */
const REDIS_SERVER = process.env.REDIS_SERVER ?? '/usr/bin/redis-server';
const REDIS_CLI = process.env.REDIS_CLI ?? '/usr/bin/redis-cli';
/** The Caddy web server, the front door of a cluster. */
const CADDY = process.env.CADDY ?? '/usr/bin/caddy';

/** Whether something at 127.0.0.1:`port` answers a Redis PING within `timeout` ms. */
function answersRedisPing(port, timeout) {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let reply = '';
    const finish = (result) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => finish(false), timeout);
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      reply += chunk.toString();
      if (reply.includes('\r\n')) finish(reply.startsWith('+PONG'));
    });
    socket.once('error', () => finish(false));
  });
}

/**
 * Spawns `command` with `args` (and `options`), gathering what it prints in `output` (an array
 * of strings, given or new). Returns {child, output, end}, `end()` stopping
 * the process with SIGTERM if it still runs and waiting until it has.
 */
function spawnLogged(command, args, options = {}, output = []) {
  const child = spawn(command, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.on('data', (chunk) => output.push(chunk.toString()));
  child.stderr.on('data', (chunk) => output.push(chunk.toString()));
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const end = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await exited;
    }
  };
  return { child, output, end };
}

/**
 * Starts a throwaway `redis-server` on a free loopback port, keeping nothing on disk, and waits
 * until it answers. Resolves with {url, port, command, stop}; `command(...args)` runs one
 * command with redis-cli and resolves with its raw output. The log is saved as
 * `artifacts/<name>.redis.log` when it stops.
 */
export async function startRedis(name) {
  if (!existsSync(REDIS_SERVER)) throw new Error(`no Redis server at ${REDIS_SERVER}: install Debian's redis-server`);
  const directory = await mkdtemp(path.join(os.tmpdir(), 'switchyard-redis-'));
  const port = await freeTcpPort();
  const { child, output, end } = spawnLogged(REDIS_SERVER, [
    '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', directory,
  ]);
  const stop = async () => {
    await end();
    await mkdir(artifacts, { recursive: true });
    await writeFile(path.join(artifacts, `${name}.redis.log`), output.join(''));
    await rm(directory, { recursive: true, force: true });
  };
  const deadline = Date.now() + 10_000;
  while (!(await answersRedisPing(port, 200))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`Redis did not start on port ${port}: see artifacts/${name}.redis.log`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50)); // the polling interval
  }
  const command = async (...args) => {
    const { stdout } = await promisify(execFile)(REDIS_CLI, ['-h', '127.0.0.1', '-p', String(port), '--raw', ...args]);
    return stdout.trim();
  };
  return { url: `redis://127.0.0.1:${port}`, port, command, stop };
}

/**
 * Starts one node of a cluster on `redis` ({url}) as `nodeId`: startServer's server, with
 * `--redis-url` and `--node-id`, the signaling URL clients reach it at (`signalingUrl`; by
 * default the server's own) and `extraArgs`. Its log is `artifacts/<name>.server.log`.
 */
export async function startNode(name, { redis, nodeId, signalingUrl = null, extraArgs = [] }) {
  const args = ['--redis-url', redis.url, '--node-id', nodeId];
  if (signalingUrl) args.push('--signaling-url', signalingUrl);
  const node = await startServer(name, { extraArgs: [...args, ...extraArgs] });
  node.id = nodeId;
  return node;
}

/** The Caddyfile of a cluster's front door; see startCluster. */
export function frontDoorCaddyfile(port, nodes) {
  const byNode = nodes.map(({ id, address }) => [
    `\thandle_path /node/${id}/* {`,
    `\t\treverse_proxy ${address}`,
    '\t}',
  ].join('\n'));
  return [
    '{',
    '\tadmin off',
    '\tauto_https off',
    '}',
    `http://127.0.0.1:${port} {`,
    ...byNode,
    '\thandle {',
    `\t\treverse_proxy ${nodes.map(({ address }) => address).join(' ')} {`,
    // The first node that answers takes the page and the entry sockets; a node that refuses
    // a connection is left alone for a while and the next one tried.
    '\t\t\tlb_policy first',
    '\t\t\tlb_try_duration 5s',
    '\t\t\tfail_duration 30s',
    '\t\t}',
    '\t}',
    '}',
    '',
  ].join('\n');
}

/**
 * Runs Caddy on 127.0.0.1:`port` as the front door of `nodes` ([{id, address}], address being
 * `127.0.0.1:PORT`): `/node/<id>/*` reaches that node (the prefix stripped), anything else the
 * first live node. The Caddyfile is checked with `caddy validate` first. Resolves with
 * {url, stop}; the log is saved as `artifacts/<name>.caddy.log` when it stops.
 */
export async function startCaddy(name, { port, nodes }) {
  if (!existsSync(CADDY)) throw new Error(`no Caddy at ${CADDY}`);
  const directory = await mkdtemp(path.join(os.tmpdir(), 'switchyard-caddy-'));
  const config = path.join(directory, 'Caddyfile');
  await writeFile(config, frontDoorCaddyfile(port, nodes));
  // Caddy keeps its state under XDG folders: a throwaway one, not the user's.
  const env = { ...process.env, HOME: directory, XDG_DATA_HOME: directory, XDG_CONFIG_HOME: directory };
  const output = [];
  const save = async () => {
    await mkdir(artifacts, { recursive: true });
    await writeFile(path.join(artifacts, `${name}.caddy.log`), output.join(''));
  };
  try {
    const { stdout, stderr } = await promisify(execFile)(CADDY, ['validate', '--config', config, '--adapter', 'caddyfile'], { env });
    output.push(stdout, stderr);
  } catch (error) {
    output.push(error.stdout ?? '', error.stderr ?? '');
    await save();
    throw new Error(`caddy validate refused the Caddyfile: see artifacts/${name}.caddy.log`);
  }
  const { child, end } = spawnLogged(CADDY, ['run', '--config', config, '--adapter', 'caddyfile'], { env }, output);
  const stop = async () => {
    await end();
    await save();
    await rm(directory, { recursive: true, force: true });
  };
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 10_000;
  for (;;) {
    const answered = await fetch(`${url}/`).then((response) => response.ok, () => false);
    if (answered) break;
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`Caddy did not serve the page on port ${port}: see artifacts/${name}.caddy.log`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100)); // the polling interval
  }
  return { url, port, stop };
}

/**
 * A cluster on loopback: one Redis, `size` nodes (`n1`, `n2`, ...) and, with `frontDoor`, Caddy
 * in front of them, each node's signaling URL going through it (`/node/<id>/ws`). Resolves with
 * {redis, nodes, caddy, url, node(id), stop}, each node with its `id`; `url` is where pages
 * enter (Caddy, or the first node without a front door).
 */
export async function startCluster(name, { size, frontDoor = false, extraArgs = [] }) {
  const redis = await startRedis(name);
  const nodes = [];
  let caddy = null;
  const stop = async () => {
    await caddy?.stop();
    await Promise.all(nodes.map((node) => node.stop()));
    await redis.stop();
  };
  try {
    const caddyPort = frontDoor ? await freeTcpPort() : null;
    for (let index = 1; index <= size; index += 1) {
      const nodeId = `n${index}`;
      const signalingUrl = frontDoor ? `ws://127.0.0.1:${caddyPort}/node/${nodeId}/ws` : null;
      nodes.push(await startNode(`${name}-${nodeId}`, { redis, nodeId, signalingUrl, extraArgs }));
    }
    if (frontDoor) {
      caddy = await startCaddy(name, {
        port: caddyPort,
        nodes: nodes.map((node) => ({ id: node.id, address: new URL(node.url).host })),
      });
    }
  } catch (error) {
    await stop();
    throw error;
  }
  const byId = new Map(nodes.map((node) => [node.id, node]));
  return {
    redis,
    nodes,
    caddy,
    url: caddy?.url ?? nodes[0].url,
    node: (id) => byId.get(id),
    stop,
  };
}
