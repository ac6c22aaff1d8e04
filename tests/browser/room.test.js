// A six-person room in real Chromium: everybody sees and hears everybody, mute and camera-off
// show, screen sharing and chat work, a dropped socket heals, and people can leave.
//
// The tests run in order on one room, as a meeting would unfold; each starts from the state the
// previous one left.

import assert from 'node:assert/strict';
import { copyFile, stat } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';

import {
  eventually, join, joinRoom, launchBrowser, openClient, participantId,
  remoteTiles, screenshot, startServer, tileMedia, waitForFlowingMedia, waitForRemoteTiles,
} from './harness.js';

const ROOM = 'standup';
const NAMES = ['Ada Lovelace', 'Brian Kernighan', 'Chen Ning', 'Dorothy Vaughan', 'Edsger Dijkstra', 'Frances Allen'];

describe('a six-person room', () => {
  let server;
  let browser;
  /** The pages still in the room, in joining order. */
  let pages = [];

  before(async () => {
    server = await startServer('six-person-room');
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('six participants each see and hear the five others within 10 s', async (t) => {
    // The first page is the one photographed: a laptop's screen.
    pages = await Promise.all(NAMES.map((name, index) => openClient(browser, server, {
      room: ROOM, name, viewport: index === 0 ? { width: 1280, height: 720 } : undefined,
    })));
    const start = Date.now();
    await Promise.all(pages.map((page) => join(page)));
    const deadline = start + 10_000;
    await Promise.all(pages.map(async (page) => {
      await waitForRemoteTiles(page, 5, deadline - Date.now());
      await waitForFlowingMedia(page, { count: 5, timeout: deadline - Date.now() });
    }));
    t.diagnostic(`every page saw and heard the five others ${Date.now() - start} ms after the clicks on "Join room"`);
    for (const [index, page] of pages.entries()) {
      const tiles = await remoteTiles(page);
      assert.deepEqual(tiles.map((tile) => tile.name).sort(), NAMES.filter((_, other) => other !== index).sort());
      assert.ok(tiles.every((tile) => !tile.micMuted && !tile.cameraOff), 'nobody shows as muted');
    }
  });

  test('the room is saved as a screenshot', async () => {
    const file = await screenshot(pages[0], 'six-person-room.png');
    assert.ok((await stat(file)).size > 10_000, 'the screenshot has content');
    if (process.env.UPDATE_DOCS_SCREENSHOT) await copyFile(file, new URL('../../docs/six-person-room.png', import.meta.url));
  });

  test('the Chromium subscribers send REMB that the server reads, and every publisher is sent the aggregate', async () => {
    // That the publisher then sends at that cap is bandwidth.test.js's subject, in a quieter room.
    const before = await server.metrics();
    await eventually('more REMBs, received and sent', async () => {
      const now = await server.metrics();
      return now.switchyard_rembs_received_total >= before.switchyard_rembs_received_total + pages.length
        && now.switchyard_rembs_sent_total > before.switchyard_rembs_sent_total;
    });
    for (const page of pages) {
      const id = await participantId(page);
      await eventually(`a cap sent to ${id}`, () => server.bitrateCapsSent(id).length > 0);
    }
  });

  test('muting the microphone and turning the camera off show on every other page within 2 s; frames resume', async () => {
    const [muter, ...others] = pages;
    const id = await participantId(muter);
    await muter.getByRole('button', { name: 'Mic', exact: true }).click();
    await muter.getByRole('button', { name: 'Camera', exact: true }).click();
    const shows = (micMuted, cameraOff) => Promise.all(others.map((page) => page.waitForFunction(
      ({ participant, mic, camera }) => {
        const tile = document.querySelector(`.tile[data-remote][data-kind="person"][data-participant="${participant}"]`);
        return tile !== null
          && tile.querySelector('.indicator.mic-off').checkVisibility() === mic
          && tile.querySelector('.indicator.camera-off').checkVisibility() === camera;
      },
      { participant: id, mic: micMuted, camera: cameraOff },
      { timeout: 2_000 },
    )));
    await shows(true, true);

    await muter.getByRole('button', { name: 'Camera', exact: true }).click();
    await shows(true, false);
    // Frames of the camera, not the black frames of a disabled track: at least a second's worth.
    await Promise.all(others.map(async (page) => {
      const before = (await tileMedia(page))[id].frames;
      await page.waitForFunction(
        async ({ participant, frames }) => {
          const tile = document.querySelector(`.tile[data-remote][data-participant="${participant}"]`);
          const report = await window.switchyard.call.connection.peerConnection.getStats();
          let decoded = 0;
          report.forEach((stats) => {
            if (stats.type === 'inbound-rtp' && stats.mid === tile.dataset.videoMid) decoded = stats.framesDecoded;
          });
          return decoded >= frames + 10;
        },
        { participant: id, frames: before },
        { timeout: 5_000, polling: 200 },
      );
    }));
    await muter.getByRole('button', { name: 'Mic', exact: true }).click();
    await shows(false, false);
  });

  test('a screen share is an extra tile on every other page, with frames, until it stops', async () => {
    const [, sharer, ...others] = pages;
    const id = await participantId(sharer);
    await sharer.getByRole('button', { name: 'Share', exact: true }).click();
    await Promise.all(others.map(async (page) => {
      await waitForRemoteTiles(page, 6, 10_000);
      const screen = (await remoteTiles(page)).find((tile) => tile.kind === 'screen');
      assert.equal(screen.participant, id);
      await waitForFlowingMedia(page, { count: 6, audio: false, timeout: 10_000 });
    }));
    await sharer.getByRole('button', { name: 'Share', exact: true }).click();
    await Promise.all(others.map((page) => waitForRemoteTiles(page, 5, 5_000)));
  });

  test('chat reaches everybody in the room and nobody in another room', async () => {
    const elsewhere = await Promise.all(['Grace Hopper', 'Hedy Lamarr'].map((name) => joinRoom(browser, server, { room: 'retro', name })));
    try {
      for (const page of elsewhere) await waitForFlowingMedia(page, { count: 1, timeout: 10_000 });
      const [writer, ...readers] = pages;
      await writer.getByRole('button', { name: 'Chat', exact: true }).click();
      await writer.getByRole('textbox', { name: 'Message' }).fill('Shall we start?');
      await writer.getByRole('textbox', { name: 'Message' }).press('Enter');
      const sender = NAMES[0];
      await writer.locator('.chat-message.self', { hasText: 'Shall we start?' }).waitFor({ timeout: 5_000 });
      await Promise.all(readers.map(async (page) => {
        await page.waitForFunction(
          ({ name, text }) => [...document.querySelectorAll('.chat-message')].some((item) => item.querySelector('.chat-name').textContent === name && item.querySelector('.chat-text').textContent === text),
          { name: sender, text: 'Shall we start?' },
          { timeout: 5_000 },
        );
        assert.equal(await page.locator('#chat-unread').textContent(), '1', 'a closed panel counts the unread message');
      }));
      for (const page of elsewhere) {
        assert.equal(await page.locator('.chat-message').count(), 0, 'no message crosses rooms');
        assert.deepEqual((await remoteTiles(page)).map((tile) => tile.name), [page === elsewhere[0] ? 'Hedy Lamarr' : 'Grace Hopper']);
      }
    } finally {
      await Promise.all(elsewhere.map((page) => page.context().close()));
    }
  });

  test('a dropped signaling socket rejoins by itself, and video flows both ways within 10 s', async () => {
    const [dropped, ...others] = pages;
    const before = await participantId(dropped);
    const start = Date.now();
    await dropped.evaluate(() => window.testSockets.at(-1).close(3000, 'dropped by the test'));
    const deadline = start + 10_000;
    await dropped.waitForFunction((old) => window.switchyard.call.state === 'joined' && window.switchyard.call.self !== old, before, { timeout: deadline - Date.now() });
    const after = await participantId(dropped);
    await Promise.all([
      waitForFlowingMedia(dropped, { count: 5, timeout: deadline - Date.now() }),
      ...others.map(async (page) => {
        await page.waitForFunction((id) => document.querySelector(`.tile[data-remote][data-participant="${id}"]`) !== null, after, { timeout: deadline - Date.now() });
        await waitForFlowingMedia(page, { count: 5, timeout: deadline - Date.now() });
      }),
    ]);
    for (const page of others) {
      assert.ok(!(await remoteTiles(page)).some((tile) => tile.participant === before), 'the old membership is gone');
    }
  });

  test('leaving, or closing the tab, removes the tile everywhere within 3 s', async () => {
    const leaver = pages.pop();
    await leaver.getByRole('button', { name: 'Leave', exact: true }).click();
    await leaver.getByText('You left the room').waitFor();
    await Promise.all(pages.map((page) => waitForRemoteTiles(page, 4, 3_000)));

    const closer = pages.pop();
    await closer.close();
    await Promise.all(pages.map((page) => waitForRemoteTiles(page, 3, 3_000)));
  });

  test('no page reported a script error', () => {
    for (const page of pages) assert.deepEqual(page.errors.map(String), []);
  });
});
