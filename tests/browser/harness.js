// What the browser tests share: the real server binary, Debian's Chromium driven by
// playwright-core, and helpers that look at a page the way a person would (tiles, names,
// indicators) and measure what its media connection receives.
//
// Every wait is a condition with a deadline; nothing sleeps for a fixed time.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repository = path.resolve(here, '..', '..');
export const artifacts = path.join(repository, 'artifacts');

/** The server binary; `cargo build` makes it. */
const SERVER_BINARY = process.env.SWITCHYARD_BIN ?? path.join(repository, 'target', 'debug', 'switchyard');
/** Debian's Chromium. */
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

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
  const child = spawn(SERVER_BINARY, ['--http', '127.0.0.1:0', '--media-ip', '127.0.0.1', ...extraArgs], {
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
  return {
    url,
    log,
    async metrics() {
      const response = await fetch(`${url}/metrics`);
      const values = {};
      for (const line of (await response.text()).split('\n')) {
        const match = /^(switchyard_\w+) (\d+)$/.exec(line);
        if (match) values[match[1]] = Number(match[2]);
      }
      return values;
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
        const exited = new Promise((resolve) => child.once('exit', resolve));
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
 */
export function launchBrowser({ askForPermission = false } = {}) {
  const flags = askForPermission ? CHROMIUM_FLAGS.filter((flag) => flag !== '--use-fake-ui-for-media-stream') : CHROMIUM_FLAGS;
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: flags });
}

/**
 * Runs in every page before the client: keeps each WebSocket the page opens in
 * `window.testSockets`, so a test can drop one the way a network would, and can hold back what
 * the server says (`window.testHold = true`), see what it held (`window.testHeld()`, the
 * messages' types) and deliver it later, in order (`window.testRelease()`), to make messages
 * cross.
 */
function recordWebSockets() {
  const Native = window.WebSocket;
  window.testSockets = [];
  window.testHold = false;
  const held = [];
  window.testHeld = () => held.map(({ type }) => type);
  window.testRelease = () => {
    window.testHold = false;
    for (const { deliver } of held.splice(0)) deliver();
  };
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      window.testSockets.push(this);
    }

    addEventListener(type, listener, options) {
      if (type !== 'message') return super.addEventListener(type, listener, options);
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
 * computer with neither camera nor microphone.
 */
export async function openClient(browser, server, {
  room, name, permissions, noDevices = false, viewport = { width: 960, height: 600 },
}) {
  const context = await browser.newContext({ viewport, permissions });
  await context.addInitScript(recordWebSockets);
  if (noDevices) await context.addInitScript(withoutDevices);
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (error) => errors.push(error));
  page.errors = errors;
  const url = new URL(server.url);
  url.searchParams.set('room', room);
  url.searchParams.set('name', name);
  url.searchParams.set('video', TEST_VIDEO);
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
 * (`framesDecoded`, and for diagnosis packets and keyframes) and audio (`packetsReceived`) mids:
 * {[tileKey]: {hasVideo, hasAudio, frames, videoPackets, keyFrames, audioPackets}}.
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
        audioPackets: audio?.packetsReceived ?? 0,
      };
    }
    return result;
  });
}

/**
 * Waits until every remote tile of `page` (at least `count` of them) plays, twice in a row:
 * its video has decoded more frames and its audio received more packets (unless `audio` is
 * false) than at the previous look. Media is flowing now, not just once. A tile must have both,
 * unless `ifPresent`: then a tile plays what it has (a person without a camera has no video).
 */
export async function waitForFlowingMedia(page, { count, audio = true, ifPresent = false, timeout }) {
  const deadline = Date.now() + timeout;
  const plays = (present, more) => (present ? more : ifPresent);
  const rose = (before, after) => {
    const keys = Object.keys(after);
    return keys.length >= count && keys.every((key) => before[key]
      && plays(after[key].hasVideo, after[key].frames > before[key].frames)
      && (!audio || plays(after[key].hasAudio, after[key].audioPackets > before[key].audioPackets)));
  };
  let baseline = await tileMedia(page);
  let last = baseline;
  let rises = 0;
  while (Date.now() < deadline) {
    await page.waitForTimeout(300); // the polling interval
    last = await tileMedia(page);
    if (rose(baseline, last)) {
      rises += 1;
      if (rises === 2) return last;
      baseline = last;
    } else if (Object.keys(last).some((key) => !(key in baseline))) {
      // A tile appeared: measure it from here.
      baseline = last;
      rises = 0;
    }
  }
  throw new Error(`media did not flow on ${count} tiles within ${timeout} ms: ${JSON.stringify(last)}`);
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
