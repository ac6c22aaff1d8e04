// Adaptive stream in real Chromium: each page receives the simulcast layer its tile needs, and
// a tile that is not shown receives no video at all.
//
// One publisher sends a 1280x720 camera in three layers; every other page joins without devices
// (two cores decode five pages' worth of video, but encode only one camera).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  eventually, joinRoom, launchBrowser, participantId, receivedVideo, sentCameraLayers, startServer,
  waitForFlowingMedia,
} from './harness.js';

/** The capture the client asks for by default, at a rate two cores keep up with. */
const CAMERA = '1280x720@15';

/** Clicks the control bar's layout button until `page` shows `layout`. */
async function showLayout(page, layout) {
  if (await page.evaluate(() => window.switchyard.grid.layout) !== layout) {
    await page.getByRole('button', { name: 'Layout', exact: true }).click();
  }
  await page.waitForFunction((wanted) => window.switchyard.grid.layout === wanted, layout);
}

/** Polls `probe` every 100 ms until it is truthy; resolves with {value, elapsed} or fails after `timeout`. */
async function timed(what, probe, timeout) {
  const start = Date.now();
  const value = await eventually(what, probe, { timeout, interval: 100 });
  return { value, elapsed: Date.now() - start };
}

describe('adaptive stream in a room of five', () => {
  let server;
  let browser;
  let publisher;
  let id;
  /** Pages by role: narrow (a phone), wall (one large tile), laptop (a grid, then enlarged), other. */
  const pages = {};

  before(async () => {
    server = await startServer('adaptive-stream');
    browser = await launchBrowser();
    publisher = await joinRoom(browser, server, { room: 'adaptive', name: 'Publisher', params: { video: CAMERA } });
    id = await participantId(publisher);
    const watchers = {
      narrow: { width: 360, height: 640 },
      wall: { width: 1600, height: 1000 },
      laptop: { width: 960, height: 600 },
      other: { width: 960, height: 600 },
    };
    await Promise.all(Object.entries(watchers).map(async ([role, viewport]) => {
      pages[role] = await joinRoom(browser, server, { room: 'adaptive', name: role, viewport, noDevices: true });
    }));
    await showLayout(pages.wall, 'speaker');
    await Promise.all(Object.values(pages).map((page) => waitForFlowingMedia(page, { count: 4, ifPresent: true, timeout: 15_000 })));
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('a page with small tiles decodes the low layer while a page with one large tile decodes the full one', async (t) => {
    const wallStage = await pages.wall.evaluate(() => window.switchyard.grid.stage);
    assert.equal(wallStage, id, 'the only camera takes the stage of the speaker view');
    let last = {};
    const settled = await eventually('the narrow page at the low layer and the wall at the full one', async () => {
      const sent = await sentCameraLayers(publisher);
      const narrow = await receivedVideo(pages.narrow, { participant: id });
      const wall = await receivedVideo(pages.wall, { participant: id });
      last = { sent, narrow, wall };
      const full = sent.f?.frameWidth ?? 0;
      const half = sent.h?.frameWidth ?? 0;
      return narrow && wall && narrow.frameWidth > 0 && narrow.frameWidth <= 320
        && full > half && wall.frameWidth === full ? last : null;
    }, { timeout: 30_000, interval: 500 }).catch((error) => { throw new Error(`${error.message}: ${JSON.stringify(last)}`); });
    t.diagnostic(`the narrow page decodes ${settled.narrow.frameWidth}x${settled.narrow.frameHeight}, the wall ${settled.wall.frameWidth}x${settled.wall.frameHeight}`);
    // And both keep playing.
    await eventually('both pages to decode more frames', async () => {
      const narrow = await receivedVideo(pages.narrow, { participant: id });
      const wall = await receivedVideo(pages.wall, { participant: id });
      return narrow.framesDecoded > settled.narrow.framesDecoded + 15 && wall.framesDecoded > settled.wall.framesDecoded + 15;
    }, { timeout: 5_000 });
  });

  test('enlarging a tile switches to a larger layer within 2 s, without a freeze longer than 200 ms', async (t) => {
    const laptop = pages.laptop;
    // Settled: a layer at most twice the tile's width (what the tile needs, not the full
    // picture), the same for a second, so that a switch after the click is the click's doing.
    let previous = null;
    const grid = await eventually('the laptop grid to settle on a layer', async () => {
      const now = await receivedVideo(laptop, { participant: id });
      const size = await laptop.evaluate((key) => {
        const video = document.querySelector(`.tile[data-key="${key}"] video`);
        return Math.round(video.getBoundingClientRect().width * window.devicePixelRatio);
      }, id);
      const fits = now && now.frameWidth > 0 && now.frameWidth < 2 * size && now.frameWidth < 1280;
      if (!fits || !previous || previous.frameWidth !== now.frameWidth) {
        previous = fits ? { ...now, at: Date.now() } : null;
        return null;
      }
      return Date.now() - previous.at >= 1_000 ? now : null;
    }, { timeout: 15_000, interval: 250 });
    await showLayout(laptop, 'speaker');
    assert.equal(await laptop.evaluate(() => window.switchyard.grid.stage), id);
    const { value: larger, elapsed } = await timed('a larger layer', async () => {
      const now = await receivedVideo(laptop, { participant: id });
      return now.frameWidth > grid.frameWidth ? now : null;
    }, 2_000);
    // A second of frames after the switch, so a freeze around it has ended and been counted.
    const afterwards = await eventually('a second of frames at the larger layer', async () => {
      const now = await receivedVideo(laptop, { participant: id });
      return now.framesDecoded >= larger.framesDecoded + 15 ? now : null;
    }, { timeout: 5_000 });
    const frozen = afterwards.totalFreezesDuration - grid.totalFreezesDuration;
    t.diagnostic(`switched from ${grid.frameWidth} to ${larger.frameWidth} px wide in ${elapsed} ms; `
      + `freezes meanwhile: ${afterwards.freezeCount - grid.freezeCount}, ${Math.round(frozen * 1000)} ms in all`);
    assert.ok(frozen <= 0.2, `no freeze longer than 200 ms (frozen for ${frozen} s)`);
  });

  test('no page reported a script error', () => {
    for (const page of [publisher, ...Object.values(pages)]) assert.deepEqual(page.errors.map(String), []);
  });
});

describe('a tile paged away', () => {
  let server;
  let browser;
  let publisher;
  let viewer;
  let id;

  before(async () => {
    server = await startServer('paged-away');
    browser = await launchBrowser();
    publisher = await joinRoom(browser, server, { room: 'paged', name: 'Publisher', params: { video: '640x360@15' } });
    id = await participantId(publisher);
    // Small enough for one tile a page: our own on the first, the publisher's on the second.
    viewer = await joinRoom(browser, server, { room: 'paged', name: 'Viewer', viewport: { width: 300, height: 420 }, noDevices: true });
    await viewer.waitForFunction(() => window.switchyard.grid.pages === 2);
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  /** Turns the viewer's grid to the page with the publisher's tile (`shown`) or away from it. */
  async function page(shown) {
    const button = shown ? 'Next page' : 'Previous page';
    await viewer.getByRole('button', { name: button, exact: true }).click();
    await viewer.waitForFunction(({ key, wanted }) => document.querySelector(`.tile[data-key="${key}"]`)?.checkVisibility() === wanted, { key: id, wanted: shown });
  }

  test('receives no video packets, and shows video again within 1 s of being shown', async (t) => {
    await page(true);
    await waitForFlowingMedia(viewer, { count: 1, timeout: 15_000 });

    await page(false);
    // Packets in flight when the server learns of it still arrive; then none for a while.
    let last = null;
    let since = Date.now();
    const still = await eventually('video packets to stop for a second', async () => {
      const now = await receivedVideo(viewer, { participant: id });
      if (!last || now.packetsReceived !== last.packetsReceived) {
        last = now;
        since = Date.now();
        return null;
      }
      return Date.now() - since >= 1_000 ? now : null;
    }, { timeout: 5_000, interval: 100 });
    // And none for two seconds more.
    const end = Date.now() + 2_000;
    while (Date.now() < end) {
      const now = await receivedVideo(viewer, { participant: id });
      assert.equal(now.packetsReceived, still.packetsReceived, 'a paged-away tile receives no video packets');
      assert.equal(now.shown, false);
      await viewer.waitForTimeout(200); // the polling interval
    }
    const sound = await viewer.evaluate((key) => {
      const video = document.querySelector(`.tile[data-key="${key}"] video`);
      return { tracks: video.srcObject.getAudioTracks().length, playing: !video.paused };
    }, id);
    assert.deepEqual(sound, { tracks: 1, playing: true }, 'the sound of a paged-away tile plays on');

    const shownAt = Date.now();
    await page(true);
    await eventually('frames on the tile shown again', async () => {
      const now = await receivedVideo(viewer, { participant: id });
      return now.framesDecoded > still.framesDecoded + 1;
    }, { timeout: Math.max(0, shownAt + 1_000 - Date.now()), interval: 100 });
    t.diagnostic(`video again ${Date.now() - shownAt} ms after the click that showed the tile`);
  });

  test('no page reported a script error', () => {
    for (const page of [publisher, viewer]) assert.deepEqual(page.errors.map(String), []);
  });
});
