// A person who blocks the camera is told so, still joins, sees and hears the others, and is
// heard by them.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  join, joinRoom, launchBrowser, openClient, remoteTiles, startServer, waitForFlowingMedia, waitForRemoteTiles,
} from './harness.js';

describe('a page whose camera is denied', () => {
  let server;
  let browser;
  /** A browser that refuses what a page was not allowed. */
  let strict;

  before(async () => {
    server = await startServer('camera-denied');
    browser = await launchBrowser();
    strict = await launchBrowser({ askForPermission: true });
  });

  after(async () => {
    await strict?.close();
    await browser?.close();
    await server?.stop();
  });

  test('says so clearly, joins anyway, sees and hears the others and is heard', async () => {
    const ada = await joinRoom(browser, server, { room: 'no-camera', name: 'Ada' });
    const bob = await openClient(strict, server, { room: 'no-camera', name: 'Bob', permissions: ['microphone'] });

    const problem = bob.locator('#media-problem');
    await problem.waitFor({ state: 'visible' });
    assert.match(await problem.textContent(), /camera was denied.*still join/i);
    assert.ok(await bob.getByRole('button', { name: 'Join room' }).isEnabled());

    await join(bob);
    assert.match(await bob.locator('#status').textContent(), /camera was denied/i, 'the room view repeats it');
    assert.ok(await bob.getByRole('button', { name: 'Camera', exact: true }).isDisabled(), 'there is no camera to turn on');

    // Bob sees and hears Ada.
    await waitForRemoteTiles(bob, 1, 10_000);
    await waitForFlowingMedia(bob, { count: 1, timeout: 10_000 });

    // Ada hears Bob and sees that his camera is off.
    await waitForRemoteTiles(ada, 1, 10_000);
    await ada.waitForFunction(() => {
      const tile = document.querySelector('.tile[data-remote]');
      return tile?.dataset.audioMid !== undefined && tile.querySelector('.indicator.camera-off').checkVisibility();
    }, null, { timeout: 10_000 });
    const [tile] = await remoteTiles(ada);
    assert.equal(tile.name, 'Bob');
    assert.equal(tile.videoMid, null, 'no video comes from Bob');
    assert.equal(tile.micMuted, false);
    await waitForFlowingMedia(ada, { count: 1, ifPresent: true, timeout: 10_000 });

    for (const page of [ada, bob]) assert.deepEqual(page.errors.map(String), []);
  });

  test('a computer with neither camera nor microphone still watches and listens', async () => {
    // (A page denied both would do the same, but Chromium then offers no address of this
    // machine but through a default route, which the test's network namespace does not have.)
    const cara = await openClient(browser, server, { room: 'no-camera', name: 'Cara', noDevices: true });
    assert.match(await cara.locator('#media-problem').textContent(), /no camera or microphone was found.*watch and listen/i);
    await join(cara);
    await waitForRemoteTiles(cara, 2, 10_000);
    // Ada publishes both, Bob only audio.
    await cara.waitForFunction(() => document.querySelectorAll('.tile[data-remote][data-audio-mid]').length === 2, null, { timeout: 10_000 });
    await waitForFlowingMedia(cara, { count: 2, ifPresent: true, timeout: 10_000 });
    assert.deepEqual(cara.errors.map(String), []);
  });
});
