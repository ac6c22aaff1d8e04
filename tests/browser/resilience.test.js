// The media connection recovers in place: an ICE restart from the client is answered, and the
// membership, its tiles and its media carry on.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { joinRoom, launchBrowser, participantId, startServer, waitForFlowingMedia } from './harness.js';

/** The ICE username fragments of a page's current local and remote descriptions. */
function iceFragments(page) {
  return page.evaluate(() => {
    const pc = window.switchyard.call.connection.peerConnection;
    const ufrag = (description) => /a=ice-ufrag:(\S+)/.exec(description?.sdp ?? '')?.[1] ?? null;
    return { local: ufrag(pc.currentLocalDescription), remote: ufrag(pc.currentRemoteDescription), state: pc.signalingState };
  });
}

describe('recovery of the media connection', () => {
  let server;
  let browser;

  before(async () => {
    server = await startServer('resilience');
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('an ICE restart keeps the membership and the media', async () => {
    const pages = await Promise.all(['Ada', 'Bob'].map((name) => joinRoom(browser, server, { room: 'restart', name })));
    const [ada, bob] = pages;
    for (const page of pages) await waitForFlowingMedia(page, { count: 1, timeout: 10_000 });
    const id = await participantId(ada);
    const before = await iceFragments(ada);

    await ada.evaluate(() => window.switchyard.call.connection.restartIce());
    await ada.waitForFunction(({ local, remote }) => {
      const pc = window.switchyard.call.connection.peerConnection;
      const ufrag = (description) => /a=ice-ufrag:(\S+)/.exec(description?.sdp ?? '')?.[1];
      return pc.signalingState === 'stable'
        && ufrag(pc.currentLocalDescription) !== local
        && ufrag(pc.currentRemoteDescription) !== remote
        && pc.connectionState === 'connected';
    }, before, { timeout: 10_000 });

    assert.equal(await participantId(ada), id, 'the same membership');
    for (const page of pages) await waitForFlowingMedia(page, { count: 1, timeout: 10_000 });
    assert.equal(await bob.locator('.tile[data-remote]').count(), 1);
    for (const page of pages) assert.deepEqual(page.errors.map(String), []);
  });
});
