// Through TURN over TLS (`turns:`), as on a network that lets nothing out but TLS to port 443:
// a real coturn listens for TLS only, with a certificate the test makes; the server hands the
// pages its `turns:` URL and nothing else; relay-only pages see and hear each other through it,
// and their relayed candidates reach coturn over TLS.
//
// Chromium checks a TURN server's certificate as it checks a web site's (its network stack
// makes the TLS connection, with the same verifier). So the test browser trusts the test
// certificate by its public key alone (`--ignore-certificate-errors-spki-list`, which Chromium
// honours only with a profile directory of its own, which Playwright always gives it), and a
// coturn showing any other certificate is refused: the second test shows the check is real.

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  eventually, joinRoom, launchBrowser, makeTestCertificate, participantId, remoteTiles,
  selectedCandidateTypes, startServer, startTurnServer, waitForFlowingMedia, waitForRemoteTiles,
} from './harness.js';

const SECRET = 'the-secret-coturn-and-switchyard-share';

describe('media through TURN over TLS', () => {
  let certificates;
  let trusted;
  let untrusted;
  let browser;
  const turnServers = [];
  const servers = [];

  before(async () => {
    certificates = await mkdtemp(path.join(os.tmpdir(), 'switchyard-turns-'));
    trusted = await makeTestCertificate(certificates, 'turn-trusted');
    untrusted = await makeTestCertificate(certificates, 'turn-untrusted');
    browser = await launchBrowser({ args: [`--ignore-certificate-errors-spki-list=${trusted.spki}`] });
  });

  after(async () => {
    await browser?.close();
    for (const server of servers) await server.stop();
    for (const turn of turnServers) await turn.stop();
    if (certificates) await rm(certificates, { recursive: true, force: true });
  });

  test('two relay-only pages see and hear each other through coturn\'s TLS listener', async () => {
    const turn = await startTurnServer('turns', { secret: SECRET, tls: trusted });
    turnServers.push(turn);
    assert.match(turn.url, /^turns:127\.0\.0\.1:\d+\?transport=tcp$/);
    const server = await startServer('turns-relay', { extraArgs: ['--turn-url', turn.url, '--turn-secret', SECRET] });
    servers.push(server);
    const options = { room: 'over-tls', params: { relay: '1' } };
    const ada = await joinRoom(browser, server, { ...options, name: 'Ada' });
    const bob = await joinRoom(browser, server, { ...options, name: 'Bob' });

    for (const page of [ada, bob]) {
      await waitForRemoteTiles(page, 1, 20_000);
      await waitForFlowingMedia(page, { count: 1, timeout: 20_000 });
    }
    assert.equal((await remoteTiles(ada))[0].name, 'Bob');
    assert.equal((await remoteTiles(bob))[0].name, 'Ada');
    for (const page of [ada, bob]) {
      // What the server told the page: the `turns:` URL alone, with a credential of its own.
      const iceServers = await page.evaluate(() => window.switchyard.call.connection.peerConnection.getConfiguration().iceServers);
      assert.deepEqual(iceServers.map(({ urls }) => urls).flat(), [turn.url]);
      assert.match(iceServers[0].username, /^\d+:PA_[0-9a-f]+$/);
      // The media goes through a relay that the page reaches over TLS.
      const pair = await eventually('a selected candidate pair', () => selectedCandidateTypes(page));
      assert.equal(pair.local, 'relay', `the page sends through the relay: ${JSON.stringify(pair)}`);
      assert.equal(pair.relayProtocol, 'tls', `the page reaches the relay over TLS: ${JSON.stringify(pair)}`);
      assert.equal(await page.locator('#status [data-key="unreachable"]').count(), 0, 'no error is shown');
      assert.deepEqual(page.errors.map(String), []);
    }
    // coturn's side: a session for each page, each authenticated with the page's own
    // credential and run over TLS.
    const sessions = [...(await turn.log()).matchAll(/: new, realm=<[^>]*>, username=<\d+:(PA_[0-9a-f]+)>, [^\n]*/g)];
    for (const page of [ada, bob]) {
      const id = await participantId(page);
      const own = sessions.filter((session) => session[1] === id);
      assert.ok(own.length > 0, `coturn has a session for ${id}: ${sessions.map(([line]) => line).join('\n')}`);
      for (const [line] of own) assert.match(line, /, cipher=\S+, method=TLSv1\.[23]$/, line);
    }
  });

  test('a TURN server whose certificate the browser does not trust relays nothing', async () => {
    const turn = await startTurnServer('turns-untrusted', { secret: SECRET, tls: untrusted });
    turnServers.push(turn);
    const server = await startServer('turns-untrusted', { extraArgs: ['--turn-url', turn.url, '--turn-secret', SECRET] });
    servers.push(server);
    const cara = await joinRoom(browser, server, { room: 'untrusted', name: 'Cara', params: { relay: '1' } });

    const problem = cara.locator('#status [data-key="unreachable"]');
    await problem.waitFor({ state: 'visible', timeout: 30_000 });
    const text = await problem.textContent();
    assert.match(text, /could not reach the media server through TURN/i);
    // Chromium's code for a TURN server it could not connect to; the same coturn with the
    // trusted certificate, in the test above, relays.
    assert.ok(text.includes(`${turn.url}: 701`), `it names the server and the failure: ${text}`);
    assert.notEqual(await cara.evaluate(() => window.switchyard.call.connection?.state), 'connected');
    // The browser gave up in the TLS handshake: coturn never got as far as an allocation.
    assert.doesNotMatch(await turn.log(), /username=<\d+:PA_/, 'no allocation was asked for');
    assert.deepEqual(cara.errors.map(String), []);
  });
});
