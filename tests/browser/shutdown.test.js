// The server shuts down (SIGTERM) during a call: every page is told and says so, and the
// process exits 0 without a panic.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { joinRoom, launchBrowser, startServer, waitForFlowingMedia } from './harness.js';

describe('server shutdown', () => {
  let server;
  let browser;

  before(async () => {
    server = await startServer('shutdown');
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('pages in a call are told the server is shutting down', async () => {
    const pages = await Promise.all(['Ada', 'Bob'].map((name) => joinRoom(browser, server, { room: 'closing', name })));
    for (const page of pages) await waitForFlowingMedia(page, { count: 1, timeout: 10_000 });

    const exit = await server.stop();
    assert.deepEqual(exit, { code: 0, signal: null }, 'the server exits 0');
    const log = server.log.join('');
    assert.doesNotMatch(log, /panicked/);
    assert.match(log, /shut down/);

    for (const page of pages) {
      // A lasting line, kept while the page tries to join again.
      await page.locator('#status').getByText('The server is shutting down. Rejoining the room…').waitFor({ timeout: 10_000 });
      assert.equal(await page.evaluate(() => window.switchyard.call.state), 'reconnecting');
      assert.deepEqual(page.errors.map(String), []);
    }
    // Tries to rejoin fail while the server is away, and the line stays.
    await pages[0].waitForFunction(() => window.testSockets.length >= 3, null, { timeout: 10_000 });
    await pages[0].locator('#status').getByText('The server is shutting down. Rejoining the room…').waitFor({ timeout: 1_000 });
    for (const page of pages) await page.context().close();
  });
});
