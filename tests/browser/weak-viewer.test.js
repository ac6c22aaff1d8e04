// The weakest viewer no longer lowers the room. A Chromium publisher sends its camera in three
// layers; one viewer reaches the server only through a real coturn whose `max-bps` limits
// its relayed session to about 600 kbit/s, the other directly. The server gives each the
// layer its link takes: the weak viewer a lower one, decoding without sustained freezes, while
// the other keeps the full picture at the full rate the publisher sends it.
//
// At what rate the full layer goes is the publisher's encoder's business: Chromium's fake
// camera draws a picture so simple that 1280x720 takes it 0.7 to 1.5 Mbit/s, and a camera file
// of noise, which would fill the 1.5 Mbit/s cap, leaves two cores encoding about a frame a
// second. So the strong viewer's rate is checked against what the publisher sends on its full
// layer, and the weak viewer's against its link.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  eventually, joinRoom, launchBrowser, selectedCandidateTypes, startServer, startTurnServer,
  waitForFlowingMedia, waitForRemoteTiles,
} from './harness.js';

const SECRET = 'the-secret-coturn-and-switchyard-share';
/** coturn counts bytes: 75 000 bytes a second is 600 kbit/s. */
const RELAY_BYTES_PER_SECOND = 75_000;

/** The bytes the publisher has sent on its full layer (`f`), and when. */
function sentFullLayer(page) {
  return page.evaluate(async () => {
    const report = await window.switchyard.call.connection.peerConnection.getStats();
    let bytes = 0;
    report.forEach((stats) => {
      if (stats.type === 'outbound-rtp' && stats.rid === 'f') bytes = stats.bytesSent;
    });
    return { at: performance.now(), bytes };
  });
}

/**
 * What `page` receives of `name`'s video: its inbound-rtp's frame width, bytes, decoded frames
 * and freezes.
 */
function receivedVideo(page, name) {
  return page.evaluate(async (publisher) => {
    const tile = [...document.querySelectorAll('.tile[data-remote]')]
      .find((candidate) => candidate.querySelector('.name').textContent === publisher);
    const mid = tile?.dataset.videoMid;
    if (mid === undefined) return null;
    const report = await window.switchyard.call.connection.peerConnection.getStats();
    let found = null;
    report.forEach((stats) => {
      if (stats.type === 'inbound-rtp' && stats.mid === mid) found = stats;
    });
    if (!found) return null;
    return {
      at: performance.now(),
      width: found.frameWidth ?? 0,
      bytes: found.bytesReceived ?? 0,
      frames: found.framesDecoded ?? 0,
      freezes: found.totalFreezesDuration ?? 0,
    };
  }, name);
}

/** The video `page` receives of `name` over `ms`: bitrate, widths seen, frames, freezing. */
async function measure(page, name, ms) {
  const first = await receivedVideo(page, name);
  const widths = new Set();
  const until = Date.now() + ms;
  let last = first;
  while (Date.now() < until) {
    await page.waitForTimeout(500); // sampling the widths decoded meanwhile
    last = await receivedVideo(page, name);
    widths.add(last.width);
  }
  const seconds = (last.at - first.at) / 1000;
  return {
    bitrate: ((last.bytes - first.bytes) * 8) / seconds,
    widths: [...widths],
    frames: last.frames - first.frames,
    frozen: last.freezes - first.freezes,
    seconds,
  };
}

describe('a weak viewer', () => {
  let turn;
  let server;
  let browser;

  before(async () => {
    turn = await startTurnServer('weak-viewer', { secret: SECRET, maxBps: RELAY_BYTES_PER_SECOND });
    server = await startServer('weak-viewer', { extraArgs: ['--turn-url', turn.url, '--turn-secret', SECRET] });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    await turn?.stop();
  });

  test('gets the lower layers through a 600 kbit/s relay while the others keep the full one', { timeout: 120_000 }, async () => {
    const room = 'weak-viewer';
    const publisher = await joinRoom(browser, server, { room, name: 'Publisher', params: { video: '1280x720@30' } });
    // Viewers without a camera of their own: the machine encodes one camera, in three layers.
    const strong = await joinRoom(browser, server, { room, name: 'Strong', noDevices: true, viewport: { width: 1600, height: 1000 } });
    const weak = await joinRoom(browser, server, { room, name: 'Weak', noDevices: true, params: { relay: '1' } });
    for (const page of [strong, weak]) {
      await waitForRemoteTiles(page, 2, 20_000);
      await waitForFlowingMedia(page, { count: 1, ifPresent: true, timeout: 30_000 });
    }
    const pair = await eventually('the weak viewer\'s selected pair', () => selectedCandidateTypes(weak));
    assert.equal(pair.local, 'relay', `the weak viewer receives through the relay: ${JSON.stringify(pair)}`);

    // The full layer reaches the strong viewer; the weak one settles on what its link takes.
    await eventually('the strong viewer to decode the full layer', async () => (await receivedVideo(strong, 'Publisher'))?.width >= 1280, { timeout: 30_000 });
    await eventually('the weak viewer to settle below the full layer', async () => {
      const video = await receivedVideo(weak, 'Publisher');
      return video && video.width > 0 && video.width <= 640;
    }, { timeout: 40_000 });

    const sentBefore = await sentFullLayer(publisher);
    const [strongVideo, weakVideo] = await Promise.all([
      measure(strong, 'Publisher', 10_000),
      measure(weak, 'Publisher', 10_000),
    ]);
    const sentAfter = await sentFullLayer(publisher);
    const fullLayer = ((sentAfter.bytes - sentBefore.bytes) * 8) / ((sentAfter.at - sentBefore.at) / 1000);
    const summary = JSON.stringify({ fullLayer, strongVideo, weakVideo });
    assert.ok(strongVideo.widths.every((width) => width >= 1280), `the strong viewer keeps the full layer: ${summary}`);
    assert.ok(strongVideo.bitrate > 0.9 * fullLayer, `the strong viewer receives the full layer at the rate it is sent: ${summary}`);
    assert.ok(strongVideo.bitrate > 1.5 * weakVideo.bitrate, `the strong viewer receives far more than the weak one: ${summary}`);
    assert.ok(weakVideo.widths.every((width) => width > 0 && width <= 640), `the weak viewer gets a lower layer: ${summary}`);
    assert.ok(weakVideo.frames > weakVideo.seconds * 10, `the weak viewer's video plays: ${summary}`);
    assert.ok(weakVideo.frozen < 1, `the weak viewer's video does not freeze for long: ${summary}`);
  });
});
