// Through a TURN relay: pages that may use nothing but relayed candidates (`?relay=1`, as on a
// network that blocks everything else) reach the media server through a real coturn that
// shares a secret with Switchyard, and video flows both ways. When the secrets differ, coturn
// refuses the credentials, ICE cannot start, and the page says so.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  joinRoom, launchBrowser, remoteTiles, selectedCandidateTypes, startServer, startTurnServer,
  waitForFlowingMedia, waitForRemoteTiles, eventually,
} from './harness.js';

const SECRET = 'the-secret-coturn-and-switchyard-share';

describe('media through a TURN relay', () => {
  let turn;
  let browser;
  const servers = [];

  before(async () => {
    turn = await startTurnServer('turn', { secret: SECRET });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    for (const server of servers) await server.stop();
    await turn?.stop();
  });

  test('two relay-only pages see and hear each other through coturn', async () => {
    const server = await startServer('turn-relay', { extraArgs: ['--turn-url', turn.url, '--turn-secret', SECRET] });
    servers.push(server);
    const options = { room: 'relayed', params: { relay: '1' } };
    const ada = await joinRoom(browser, server, { ...options, name: 'Ada' });
    const bob = await joinRoom(browser, server, { ...options, name: 'Bob' });

    for (const page of [ada, bob]) {
      await waitForRemoteTiles(page, 1, 20_000);
      await waitForFlowingMedia(page, { count: 1, timeout: 20_000 });
    }
    assert.equal((await remoteTiles(ada))[0].name, 'Bob');
    assert.equal((await remoteTiles(bob))[0].name, 'Ada');
    for (const page of [ada, bob]) {
      const pair = await eventually('a selected candidate pair', () => selectedCandidateTypes(page));
      assert.equal(pair.local, 'relay', `the page sends through the relay: ${JSON.stringify(pair)}`);
      // What the server told the page: the TURN URL with a credential of its own.
      const iceServers = await page.evaluate(() => window.switchyard.call.connection.peerConnection.getConfiguration().iceServers);
      assert.deepEqual(iceServers.map(({ urls }) => urls).flat(), [turn.url]);
      assert.match(iceServers[0].username, /^\d+:PA_[0-9a-f]+$/);
      assert.ok(iceServers[0].credential.length > 0);
      assert.equal(await page.locator('#status [data-key="unreachable"]').count(), 0, 'no error is shown');
      assert.deepEqual(page.errors.map(String), []);
    }
  });

  test('with a secret coturn does not share, the page says it cannot reach the media server', async () => {
    const server = await startServer('turn-wrong-secret', { extraArgs: ['--turn-url', turn.url, '--turn-secret', 'not-the-secret-coturn-knows'] });
    servers.push(server);
    const cara = await joinRoom(browser, server, { room: 'refused', name: 'Cara', params: { relay: '1' } });

    const problem = cara.locator('#status [data-key="unreachable"]');
    await problem.waitFor({ state: 'visible', timeout: 30_000 });
    const text = await problem.textContent();
    assert.match(text, /could not reach the media server through TURN/i);
    assert.match(text, /refused the credentials/i);
    assert.ok(text.includes(`${turn.url}?transport=udp: 401 Unauthorized)`), `it names the server and its answer: ${text}`);
    assert.notEqual(await cara.evaluate(() => window.switchyard.call.connection?.state), 'connected');
    assert.deepEqual(cara.errors.map(String), []);
  });
});
