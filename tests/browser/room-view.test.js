// The client's side of simulcast, adaptive stream and active speaker, in real Chromium: what it
// offers, what it tells the server in `view`, and what it does with `layers`, `video_paused` and
// `speakers`. Where a test needs a server message the server would send only in circumstances
// hard to arrange (a starved downlink, a layer nobody watches), it hands the page the message
// itself (`window.testDeliver`), holding back the real server's meanwhile.
//
// The last test fills the room to fifty with announced participants who send nothing, to see
// the grid page them and report only the shown tiles as visible.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  eventually, join, joinRoom, launchBrowser, openClient, participantId, screenshot, sentCameraLayers,
  startServer, waitForFlowingMedia,
} from './harness.js';

const ROOM = 'views';

/** The encodings' `active` flags of `page`'s camera sender, by rid. */
function cameraEncodings(page) {
  return page.evaluate(() => {
    const { call, media } = window.switchyard;
    const transceiver = call.connection.peerConnection.getTransceivers()
      .find((candidate) => candidate.sender.track === media.camera);
    return Object.fromEntries(transceiver.sender.getParameters().encodings.map((encoding) => [encoding.rid ?? '', encoding.active]));
  });
}

/** The track id `page` publishes its camera under. */
function cameraTrackId(page) {
  return page.evaluate(() => {
    const { call, media } = window.switchyard;
    const transceiver = call.connection.peerConnection.getTransceivers()
      .find((candidate) => candidate.sender.track === media.camera);
    return call.connection.publishedTrackId(transceiver);
  });
}

/** The `view` messages `page` sent: [{at, tracks}]. */
function viewsSent(page) {
  return page.evaluate(() => window.testSent
    .filter(({ message }) => message.type === 'view')
    .map(({ at, message }) => ({ at, tracks: message.tracks })));
}

/** The last entry `page` sent in `view` for each track: {`participant track`: entry}. */
async function lastViews(page) {
  const latest = {};
  for (const { tracks } of await viewsSent(page)) {
    for (const entry of tracks) latest[`${entry.participant} ${entry.track}`] = entry;
  }
  return latest;
}

/**
 * What the server should know of `page`'s remote tiles with video: {`participant track`:
 * {visible, width, height}} as measured in the page now.
 */
function tilesAsShown(page) {
  return page.evaluate(() => {
    const shown = {};
    for (const tile of document.querySelectorAll('.tile[data-remote]')) {
      const source = window.switchyard.grid.sourceOf?.(tile.dataset.key);
      if (!source) continue;
      const box = tile.querySelector('video').getBoundingClientRect();
      const visible = tile.checkVisibility();
      shown[`${source.participant} ${source.track}`] = {
        visible,
        width: visible ? Math.round(box.width * window.devicePixelRatio) : 0,
        height: visible ? Math.round(box.height * window.devicePixelRatio) : 0,
      };
    }
    return shown;
  });
}

/** Waits until every video tile of `page` has been reported to the server as it is shown now. */
async function reportedAsShown(page, what) {
  let last = null;
  return eventually(what, async () => {
    const shown = await tilesAsShown(page);
    const sent = await lastViews(page);
    last = { shown, sent };
    const keys = Object.keys(shown);
    return keys.length > 0 && keys.every((key) => sent[key] && sent[key].visible === shown[key].visible
      && sent[key].width === shown[key].width && sent[key].height === shown[key].height) ? shown : null;
  }, { timeout: 5_000 }).catch((error) => { throw new Error(`${error.message}: ${JSON.stringify(last)}`); });
}

describe('the client in a room of many', () => {
  let server;
  let browser;
  let publisher;
  let viewer;
  let publisherId;
  let camera;

  before(async () => {
    server = await startServer('room-view');
    browser = await launchBrowser();
    // The publisher's microphone stays muted: nobody speaks unless a test says so.
    publisher = await openClient(browser, server, { room: ROOM, name: 'Publisher', params: { video: '1280x720@15' } });
    await publisher.getByRole('button', { name: 'Microphone', exact: true }).click();
    await join(publisher);
    publisherId = await participantId(publisher);
    camera = await cameraTrackId(publisher);
    viewer = await joinRoom(browser, server, { room: ROOM, name: 'Viewer', noDevices: true });
    await waitForFlowingMedia(viewer, { count: 1, audio: false, timeout: 15_000 });
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('the camera is offered in three simulcast layers, a screen share in one tuned for detail', async () => {
    const sdp = await publisher.evaluate(() => window.switchyard.call.connection.peerConnection.localDescription.sdp);
    assert.match(sdp, /a=simulcast:send q;h;f/);
    for (const rid of ['q', 'h', 'f']) assert.match(sdp, new RegExp(`a=rid:${rid} send`));
    const encodings = await publisher.evaluate(() => {
      const { call, media } = window.switchyard;
      return call.connection.peerConnection.getTransceivers()
        .find((candidate) => candidate.sender.track === media.camera).sender.getParameters().encodings
        .map(({ rid, scaleResolutionDownBy, maxBitrate }) => ({ rid, scaleResolutionDownBy, maxBitrate }));
    });
    assert.deepEqual(encodings, [
      { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150_000 },
      { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500_000 },
      { rid: 'f', scaleResolutionDownBy: 1, maxBitrate: 1_500_000 },
    ]);

    await publisher.getByRole('button', { name: 'Share', exact: true }).click();
    const screen = await eventually('the screen share published', () => publisher.evaluate(() => {
      const { call } = window.switchyard;
      const track = call.screen?.track;
      const transceiver = track && call.connection.peerConnection.getTransceivers().find((candidate) => candidate.sender.track === track);
      if (!transceiver) return null;
      const { encodings } = transceiver.sender.getParameters();
      return { hint: track.contentHint, encodings: encodings.map(({ rid, maxBitrate }) => ({ rid: rid ?? null, maxBitrate })) };
    }));
    assert.deepEqual(screen, { hint: 'detail', encodings: [{ rid: null, maxBitrate: 2_500_000 }] });
    // The offer that publishes it tells the server it is a presentation; the camera is not.
    const sections = await eventually('an offer with the screen share sent', () => publisher.evaluate(() => {
      const { call } = window.switchyard;
      const mid = call.connection.peerConnection.getTransceivers().find((candidate) => candidate.sender.track === call.screen?.track)?.mid;
      const offer = window.testSent.filter(({ message }) => message.type === 'offer').at(-1)?.message.sdp ?? '';
      const section = (wanted) => offer.split(/\r\nm=/).find((text) => text.includes(`\r\na=mid:${wanted}\r\n`)) ?? null;
      const cameraMid = call.connection.peerConnection.getTransceivers().find((candidate) => candidate.sender.track === window.switchyard.media.camera)?.mid;
      const screenSection = mid ? section(mid) : null;
      return screenSection && { screen: screenSection.includes('a=content:slides'), camera: section(cameraMid).includes('a=content:slides') };
    }));
    assert.deepEqual(sections, { screen: true, camera: false });
    await publisher.getByRole('button', { name: 'Share', exact: true }).click();
    await viewer.waitForFunction(() => document.querySelectorAll('.tile[data-remote]').length === 1);
  });

  test('the camera\'s video flows on after a screen share came and went', async () => {
    await waitForFlowingMedia(viewer, { count: 1, audio: false, timeout: 10_000 });
  });

  test('`layers` switches the camera\'s layers on and off, and a device switch keeps them', async () => {
    await publisher.evaluate(() => { window.testHold = true; });
    try {
      await publisher.evaluate((track) => window.testDeliver({ type: 'layers', track, active: ['q'] }), camera);
      await publisher.waitForFunction(async () => {
        const { call, media } = window.switchyard;
        const transceiver = call.connection.peerConnection.getTransceivers().find((candidate) => candidate.sender.track === media.camera);
        return transceiver.sender.getParameters().encodings.map((encoding) => encoding.active).join() === 'true,false,false';
      });
      // The browser stops encoding what is off.
      await eventually('h and f reported inactive', async () => {
        const layers = await sentCameraLayers(publisher);
        return layers.q?.active && layers.h?.active === false && layers.f?.active === false;
      });

      const before = await publisher.evaluate(() => window.switchyard.media.camera.id);
      await publisher.evaluate(() => window.switchyard.call.switchDevice('video', window.switchyard.media.deviceId('video')));
      assert.notEqual(await publisher.evaluate(() => window.switchyard.media.camera.id), before, 'a new camera track');
      assert.deepEqual(await cameraEncodings(publisher), { q: true, h: false, f: false });
      assert.equal(await cameraTrackId(publisher), camera, 'announced under the same track id');

      await publisher.evaluate((track) => window.testDeliver({ type: 'layers', track, active: ['q', 'h', 'f'] }), camera);
      await publisher.waitForFunction(() => {
        const { call, media } = window.switchyard;
        const transceiver = call.connection.peerConnection.getTransceivers().find((candidate) => candidate.sender.track === media.camera);
        return transceiver.sender.getParameters().encodings.every((encoding) => encoding.active);
      });
    } finally {
      await publisher.evaluate(() => window.testRelease());
    }
  });

  test('after the layers were switched off and on again, the viewer\'s video flows', async () => {
    await waitForFlowingMedia(viewer, { count: 1, audio: false, timeout: 10_000 });
  });

  test('each received video\'s tile size, in device pixels, and visibility go to the server in `view`', async () => {
    const shown = await reportedAsShown(viewer, 'the publisher\'s tile reported');
    assert.deepEqual(Object.keys(shown), [`${publisherId} ${camera}`], 'the camera, under the track id it was announced with');
    assert.equal(shown[`${publisherId} ${camera}`].visible, true);
    const key = `${publisherId} ${camera}`;
    const before = shown[key].width;
    await viewer.setViewportSize({ width: 1280, height: 800 });
    // The layout follows the viewport a frame or two later: until it does, the old size is
    // both what is shown and what was reported.
    await eventually('the tile to grow', async () => (await tilesAsShown(viewer))[key]?.width > before);
    const larger = await reportedAsShown(viewer, 'the larger tile reported');
    assert.ok(larger[key].width > before, 'the tile grew, and the server was told');
    await viewer.setViewportSize({ width: 960, height: 600 });
    await reportedAsShown(viewer, 'the tile reported again');
  });

  test('`video_paused` shows a low bandwidth mark on the tile while it lasts', async () => {
    const mark = viewer.locator(`.tile[data-participant="${publisherId}"] .low-bandwidth`);
    assert.equal(await mark.isVisible(), false);
    await viewer.evaluate(({ participant, track }) => window.testDeliver({ type: 'video_paused', participant, track, paused: true }), { participant: publisherId, track: camera });
    await mark.waitFor({ state: 'visible', timeout: 1_000 });
    assert.equal(await mark.textContent(), 'Low bandwidth');
    await viewer.evaluate(({ participant, track }) => window.testDeliver({ type: 'video_paused', participant, track, paused: false }), { participant: publisherId, track: camera });
    await mark.waitFor({ state: 'hidden', timeout: 1_000 });
  });

  test('`speakers` rings whoever speaks, and the speaker view keeps the active speaker large', async () => {
    const tile = viewer.locator(`.tile[data-participant="${publisherId}"]`);
    await viewer.evaluate((id) => window.testDeliver({ type: 'speakers', active: id, speaking: [id] }), publisherId);
    await viewer.waitForFunction((id) => document.querySelector(`.tile[data-participant="${id}"]`).hasAttribute('data-speaking'), publisherId, { timeout: 1_000 });
    const ring = await tile.evaluate((element) => getComputedStyle(element).boxShadow);
    assert.notEqual(ring, 'none', 'a visible ring');
    assert.equal(await viewer.evaluate(() => window.switchyard.call.speakers.active), publisherId);

    await viewer.getByRole('button', { name: 'Layout', exact: true }).click();
    await viewer.waitForFunction((id) => window.switchyard.grid.stage === id, publisherId);
    await viewer.evaluate((id) => window.testDeliver({ type: 'speakers', active: id, speaking: [] }), publisherId);
    await viewer.waitForFunction((id) => !document.querySelector(`.tile[data-participant="${id}"]`).hasAttribute('data-speaking'), publisherId, { timeout: 1_000 });
    assert.equal(await viewer.evaluate(() => window.switchyard.grid.stage), publisherId, 'the last speaker stays on the stage');
    await reportedAsShown(viewer, 'the stage\'s size reported');
    await viewer.getByRole('button', { name: 'Layout', exact: true }).click();
    await viewer.waitForFunction(() => window.switchyard.grid.layout === 'grid');
  });

  test('a room of fifty is paged, and only the shown tiles are reported visible', async () => {
    const others = Array.from({ length: 48 }, (_, index) => ({
      id: `PA_${(0xf00000000000 + index).toString(16)}`,
      name: `Guest ${index + 1}`,
      track: `guest-camera-${index + 1}`,
      mid: `guest-${index + 1}`,
    }));
    await viewer.evaluate((guests) => {
      for (const { id, name, track, mid } of guests) {
        window.testDeliver({ type: 'participant_joined', participant: { id, name } });
        window.testDeliver({ type: 'track_published', participant: id, track, kind: 'video', stream: `stream-${track}`, mid, muted: false });
      }
    }, others);
    await viewer.waitForFunction(() => document.querySelectorAll('.tile[data-remote]').length === 49);
    assert.ok(await viewer.locator('.status .message.passing').count() <= 3, 'forty-eight "joined" notices do not cover the room');
    const pages = await viewer.evaluate(() => window.switchyard.grid.pages);
    assert.ok(pages > 1, `more than one page (${pages})`);
    const firstPage = await reportedAsShown(viewer, 'the first page reported');
    await screenshot(viewer, 'room-of-fifty-grid.png');
    const visible = Object.values(firstPage).filter((entry) => entry.visible).length;
    assert.ok(visible > 0 && visible < 49, `some tiles visible, the others not (${visible} of 49)`);
    for (const tileElement of await viewer.$$('.tile:not([hidden])')) {
      assert.ok(await tileElement.evaluate((element) => element.getBoundingClientRect().width >= 200), 'shown tiles are at least 200 px wide');
    }

    await viewer.getByRole('button', { name: 'Next page', exact: true }).click();
    const secondPage = await reportedAsShown(viewer, 'the second page reported');
    const turned = Object.keys(secondPage).filter((key) => secondPage[key].visible !== firstPage[key].visible);
    assert.ok(turned.length > 0, 'turning the page changed which tiles are visible');

    await viewer.getByRole('button', { name: 'Layout', exact: true }).click();
    await reportedAsShown(viewer, 'the speaker view reported');
    await screenshot(viewer, 'room-of-fifty-speaker-view.png');

    const sent = await viewsSent(viewer);
    assert.ok(sent.every(({ tracks }) => tracks.length >= 1 && tracks.length <= 64), 'from 1 to 64 entries a message');
    const gaps = sent.slice(1).map(({ at }, index) => at - sent[index].at);
    assert.ok(gaps.every((gap) => gap >= 240), `at most four \`view\` messages a second (the shortest gap: ${Math.min(...gaps)} ms)`);

    await viewer.evaluate((guests) => {
      for (const { id } of guests) window.testDeliver({ type: 'participant_left', participant: id });
    }, others);
    await viewer.waitForFunction(() => document.querySelectorAll('.tile[data-remote]').length === 1 && window.switchyard.grid.pages === 1);
  });

  test('no page reported a script error', () => {
    for (const page of [publisher, viewer]) assert.deepEqual(page.errors.map(String), []);
  });
});
