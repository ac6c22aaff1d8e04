// ICE over TCP: with the server's UDP media turned off, as for a client whose network blocks
// UDP, Chromium connects to the server's passive TCP candidate and video flows both ways.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  eventually, joinRoom, launchBrowser, remoteTiles, selectedCandidateTypes, startServer,
  waitForFlowingMedia, waitForRemoteTiles,
} from './harness.js';

describe('ICE over TCP', () => {
  let server;
  let browser;

  before(async () => {
    server = await startServer('ice-tcp', { extraArgs: ['--media-transport', 'tcp'] });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('without UDP, two pages see and hear each other over the TCP port', async () => {
    const ada = await joinRoom(browser, server, { room: 'tcp', name: 'Ada' });
    const bob = await joinRoom(browser, server, { room: 'tcp', name: 'Bob' });
    for (const page of [ada, bob]) {
      await waitForRemoteTiles(page, 1, 20_000);
      await waitForFlowingMedia(page, { count: 1, timeout: 20_000 });
    }
    assert.equal((await remoteTiles(ada))[0].name, 'Bob');
    assert.equal((await remoteTiles(bob))[0].name, 'Ada');
    for (const page of [ada, bob]) {
      const pair = await eventually('a selected candidate pair', () => selectedCandidateTypes(page));
      assert.equal(pair.protocol, 'tcp', `media goes over TCP: ${JSON.stringify(pair)}`);
      const offered = await page.evaluate(() => window.switchyard.call.connection.peerConnection.currentRemoteDescription.sdp);
      assert.doesNotMatch(offered, /a=candidate:\S+ \d+ udp /i, 'the server announces no UDP candidate');
      assert.deepEqual(page.errors.map(String), []);
    }
  });
});
