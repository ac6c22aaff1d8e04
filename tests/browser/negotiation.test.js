// Negotiation as docs/signaling.md has it: when the server's offer crosses the client's, the
// client rolls its own back, answers, and offers again; a device switch replaces the track
// without renegotiating.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  joinRoom, launchBrowser, participantId, remoteTiles, startServer, waitForFlowingMedia, waitForRemoteTiles,
} from './harness.js';

describe('negotiation', () => {
  let server;
  let browser;

  before(async () => {
    server = await startServer('negotiation');
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('glare: the client rolls back, answers the server, and offers again', async () => {
    const [ada, bob] = await Promise.all(['Ada', 'Bob'].map((name) => joinRoom(browser, server, { room: 'glare', name })));
    for (const page of [ada, bob]) await waitForFlowingMedia(page, { count: 1, timeout: 10_000 });

    // Ada does not hear the server for a moment. Cara joins, so the server offers Ada her
    // tracks; meanwhile Ada shares her screen and offers too. Then the server's offer arrives.
    await ada.evaluate(() => { window.testHold = true; });
    const cara = await joinRoom(browser, server, { room: 'glare', name: 'Cara' });
    await ada.waitForFunction(() => window.testHeld().includes('offer'), null, { timeout: 10_000 });
    await ada.getByRole('button', { name: 'Share', exact: true }).click();
    await ada.waitForFunction(() => window.switchyard.call.connection.peerConnection.signalingState === 'have-local-offer', null, { timeout: 10_000 });
    await ada.evaluate(() => window.testRelease());

    await ada.waitForFunction(() => window.switchyard.call.connection.rollbacks >= 1, null, { timeout: 10_000 });
    const id = await participantId(ada);
    for (const page of [bob, cara]) {
      await waitForRemoteTiles(page, 3, 10_000);
      const screen = (await remoteTiles(page)).find((tile) => tile.kind === 'screen');
      assert.equal(screen?.participant, id, 'the offer sent again published the screen');
      await waitForFlowingMedia(page, { count: 3, audio: false, timeout: 10_000 });
    }
    await waitForRemoteTiles(ada, 2, 10_000);
    await waitForFlowingMedia(ada, { count: 2, timeout: 10_000 });

    // The browser's own "Stop sharing" ends the track; the share stops as with the button.
    await ada.evaluate(() => window.switchyard.call.screen.track.dispatchEvent(new Event('ended')));
    for (const page of [bob, cara]) await waitForRemoteTiles(page, 2, 5_000);
    assert.equal(await ada.getByRole('button', { name: 'Share', exact: true }).getAttribute('aria-pressed'), 'false');
    for (const page of [ada, bob, cara]) assert.deepEqual(page.errors.map(String), []);
  });

  test('switching the microphone replaces the track without renegotiating', async () => {
    const [ada, bob] = await Promise.all(['Ada', 'Bob'].map((name) => joinRoom(browser, server, { room: 'devices', name })));
    for (const page of [ada, bob]) await waitForFlowingMedia(page, { count: 1, timeout: 10_000 });
    const sdpBefore = await ada.evaluate(() => window.switchyard.call.connection.peerConnection.localDescription.sdp);

    await ada.getByRole('button', { name: 'Devices', exact: true }).click();
    const microphones = ada.getByRole('combobox', { name: 'Microphone' });
    await microphones.waitFor({ state: 'visible' });
    await ada.waitForFunction(() => document.querySelectorAll('#microphone-select option').length >= 2, null, { timeout: 5_000 });
    const options = await microphones.locator('option').evaluateAll((all) => all.map((option) => option.value));
    assert.ok(options.length >= 2, `Chromium's fake devices offer several microphones: ${options}`);
    const current = await microphones.inputValue();
    const other = options.find((value) => value !== current);
    await microphones.selectOption(other);
    await ada.waitForFunction((deviceId) => {
      const sender = window.switchyard.call.connection.peerConnection.getSenders().find((s) => s.track?.kind === 'audio');
      return sender.track.getSettings().deviceId === deviceId;
    }, other);
    await ada.getByRole('button', { name: 'Done' }).click();

    assert.equal(await ada.evaluate(() => window.switchyard.call.connection.peerConnection.localDescription.sdp), sdpBefore, 'no renegotiation');
    await waitForFlowingMedia(bob, { count: 1, timeout: 10_000 });
    // The server still knows the track by the id it was announced with: muting still shows.
    await ada.getByRole('button', { name: 'Mic', exact: true }).click();
    await bob.waitForFunction(() => document.querySelector('.tile[data-remote] .indicator.mic-off').checkVisibility(), null, { timeout: 2_000 });
    for (const page of [ada, bob]) assert.deepEqual(page.errors.map(String), []);
  });
});
