// Access links: on a server with a token key the page joins with `?token=`, takes the room and
// the name from it, takes the token out of the address bar and keeps it for rejoining, does what
// the token grants and no more, and explains a token it cannot use.
// The tokens come from the server binary's own `switchyard token` command.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  join, joinRoom, launchBrowser, mintToken, openClient, remoteTiles, startServer, TEST_VIDEO,
  waitForFlowingMedia, waitForRemoteTiles,
} from './harness.js';

const KEY = 'the-browser-tests-token-key-0123456789';

describe('access tokens in the browser client', () => {
  let server;
  let browser;

  before(async () => {
    server = await startServer('tokens', { extraArgs: ['--token-key', KEY] });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('a page joins with its token, under the room and name the token carries', async () => {
    const token = await mintToken(KEY, { room: 'briefing', identity: 'ada', name: 'Ada Lovelace' });
    const ada = await openClient(browser, server, { params: { token } });
    assert.equal(await ada.locator('#join-room').inputValue(), 'briefing');
    assert.equal(await ada.locator('#join-name').inputValue(), 'Ada Lovelace');
    await join(ada);
    assert.deepEqual(await ada.evaluate(() => window.switchyard.call.grants), { publish: true, subscribe: true, chat: true });

    // The token left the address bar once read; the rest of the query stayed.
    for (const address of [new URL(ada.url()), new URL(await ada.evaluate(() => window.location.href))]) {
      assert.equal(address.searchParams.get('token'), null, `no token in ${address}`);
      assert.equal(address.searchParams.get('room'), 'briefing');
      assert.equal(address.searchParams.get('video'), TEST_VIDEO);
    }
    assert.ok(!(await ada.evaluate(() => window.location.href + document.URL)).includes(token));

    // A viewer's token grants receiving only: it sees and hears Ada, is told it cannot be seen
    // or heard, and publishes nothing.
    const viewerToken = await mintToken(KEY, { room: 'briefing', identity: 'viewer', name: 'Viewer', grants: ['subscribe'] });
    const viewer = await joinRoom(browser, server, { params: { token: viewerToken } });
    await waitForRemoteTiles(viewer, 1, 10_000);
    await waitForFlowingMedia(viewer, { count: 1, timeout: 10_000 });
    assert.match(await viewer.locator('#status [data-key="grants"]').textContent(), /does not let you be seen or heard, or send chat messages/);
    const sending = await viewer.evaluate(() => window.switchyard.call.connection.peerConnection.getTransceivers()
      .filter((transceiver) => transceiver.direction === 'sendonly' || transceiver.direction === 'sendrecv').length);
    assert.equal(sending, 0, 'the viewer offers nothing to publish');
    await waitForRemoteTiles(ada, 1, 10_000);
    const [tile] = await remoteTiles(ada);
    assert.equal(tile.name, 'Viewer');
    assert.equal(tile.videoMid, null, 'nothing comes from the viewer');
    assert.equal(tile.audioMid, null);

    // The page kept the token in memory: leaving and rejoining needs no new link.
    await ada.getByRole('button', { name: 'Leave', exact: true }).click();
    await ada.getByRole('button', { name: 'Rejoin' }).click();
    await ada.waitForFunction(() => window.switchyard.call?.state === 'joined');
    assert.equal(new URL(ada.url()).searchParams.get('token'), null);

    for (const page of [ada, viewer]) assert.deepEqual(page.errors.map(String), []);
  });

  test('a page without a usable token stays on the join screen and says why', async () => {
    const cases = [
      [{}, /needs an access link/],
      [{ token: 'not-a-token' }, /not valid for this server/],
      [{ token: await mintToken(KEY, { room: 'other', identity: 'cara' }) }, /for another room/],
      [{ token: await mintToken('some-other-key-that-is-long-enough-too', { room: 'briefing', identity: 'cara' }) }, /not valid for this server/],
    ];
    for (const [params, explanation] of cases) {
      const page = await openClient(browser, server, { room: 'briefing', name: 'Cara', params });
      await page.getByRole('button', { name: 'Join room' }).click();
      const error = page.locator('#join-error');
      await error.waitFor({ state: 'visible', timeout: 10_000 });
      assert.match(await error.textContent(), explanation, JSON.stringify(params));
      assert.ok(await page.locator('#join-screen').isVisible());
      assert.deepEqual(page.errors.map(String), []);
      await page.context().close();
    }
  });
});
