// Simulcast publishing from real Chromium: the camera goes out in three VP8 layers (q, h, f),
// and the server receives all three and measures each one's bitrate.
//
// One publisher with a 1280x720 camera; three watchers without devices whose tiles need the
// three sizes (a narrow phone, a laptop's grid, a large speaker view), so that somebody wants
// every layer and the server has no reason to switch one off.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  eventually, joinRoom, launchBrowser, participantId, sentCameraLayers, startServer, waitForFlowingMedia,
} from './harness.js';

const ROOM = 'simulcast';
const RIDS = ['q', 'h', 'f'];
/** The capture the client asks for by default, at a rate two cores keep up with. */
const CAMERA = '1280x720@15';
const LAYER_METRIC = 'switchyard_publication_layer_bitrate_bps';

describe('simulcast publishing', () => {
  let server;
  let browser;
  let publisher;
  let watchers = [];

  before(async () => {
    server = await startServer('simulcast');
    browser = await launchBrowser();
    publisher = await joinRoom(browser, server, { room: ROOM, name: 'Publisher', params: { video: CAMERA } });
    watchers = await Promise.all([
      { name: 'Phone', viewport: { width: 360, height: 640 } },
      { name: 'Laptop', viewport: { width: 960, height: 600 } },
      { name: 'Wall', viewport: { width: 1600, height: 1000 } },
    ].map(({ name, viewport }) => joinRoom(browser, server, { room: ROOM, name, viewport, noDevices: true })));
    await watchers[2].getByRole('button', { name: 'Layout', exact: true }).click();
    await Promise.all(watchers.map((page) => waitForFlowingMedia(page, { count: 3, ifPresent: true, timeout: 15_000 })));
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('the camera is sent in three layers, each encoding frames, at a quarter, half and full size', async (t) => {
    let last = null;
    const sending = async () => {
      last = await sentCameraLayers(publisher);
      return RIDS.every((rid) => last[rid]?.active && last[rid].framesEncoded > 0 && last[rid].bytesSent > 0) ? last : null;
    };
    // Chromium adds the upper layers as its estimate of the uplink grows.
    const first = await eventually('three layers sending', sending, { timeout: 30_000, interval: 500 })
      .catch((error) => { throw new Error(`${error.message}: ${JSON.stringify(last)}`); });
    const second = await eventually('every layer to send more', async () => {
      const now = await sending();
      return now && RIDS.every((rid) => now[rid].framesEncoded > first[rid].framesEncoded && now[rid].bytesSent > first[rid].bytesSent) ? now : null;
    }, { timeout: 10_000, interval: 500 });
    t.diagnostic(`layers sent: ${RIDS.map((rid) => `${rid} ${second[rid].frameWidth}x${second[rid].frameHeight}`).join(', ')}`);
    assert.ok(second.q.frameWidth < second.h.frameWidth && second.h.frameWidth < second.f.frameWidth,
      `q is smaller than h, h smaller than f: ${JSON.stringify(second)}`);
    // Within the few pixels the encoder rounds sizes to.
    assert.ok(Math.abs(second.f.frameWidth - 2 * second.h.frameWidth) <= 4, 'h is half of f');
    assert.ok(Math.abs(second.f.frameWidth - 4 * second.q.frameWidth) <= 8, 'q is a quarter of f');
  });

  test('/metrics shows three layers received for the camera, each with its bitrate', async (t) => {
    const id = await participantId(publisher);
    const camera = await publisher.evaluate(() => {
      const { call, media } = window.switchyard;
      const transceiver = call.connection.peerConnection.getTransceivers().find((candidate) => candidate.sender.track === media.camera);
      return call.connection.publishedTrackId(transceiver);
    });
    let last = [];
    const layers = await eventually(`three layers of ${id}'s camera in ${LAYER_METRIC}`, async () => {
      last = (await server.metricSeries(LAYER_METRIC)).filter(({ labels }) => labels.participant === id);
      const byRid = Object.fromEntries(last.filter(({ labels }) => labels.track === camera).map(({ labels, value }) => [labels.rid, value]));
      // The upper layers start small and grow as the publisher's estimate does: wait until the
      // bitrates rank as the layers' sizes do.
      return RIDS.every((rid) => byRid[rid] > 0) && byRid.q < byRid.h && byRid.h < byRid.f ? byRid : null;
    }, { timeout: 20_000, interval: 500 }).catch((error) => { throw new Error(`${error.message}: ${JSON.stringify(last)}`); });
    t.diagnostic(`bitrates received (bit/s): ${RIDS.map((rid) => `${rid} ${layers[rid]}`).join(', ')}`);
  });

  test('no page reported a script error', () => {
    for (const page of [publisher, ...watchers]) assert.deepEqual(page.errors.map(String), []);
  });
});
