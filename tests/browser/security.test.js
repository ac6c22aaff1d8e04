// The client's pages under their security headers: the page is served with a
// Content-Security-Policy it keeps to, refuses to be framed and names itself to no other site;
// a violation (an inline script injected into the page) is blocked and shows in `page.errors`,
// which every browser test checks is empty.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { eventually, join, launchBrowser, openClient, startServer } from './harness.js';

describe('the security headers', () => {
  let server;
  let browser;

  before(async () => {
    server = await startServer('security');
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('the page is served with its headers and keeps to its policy', async () => {
    const response = await fetch(server.url);
    assert.match(response.headers.get('content-security-policy'), /default-src 'none'.*frame-ancestors 'none'/);
    assert.equal(response.headers.get('x-frame-options'), 'DENY');
    assert.equal(response.headers.get('referrer-policy'), 'no-referrer');
    assert.equal(response.headers.get('x-content-type-options'), 'nosniff');

    const page = await join(await openClient(browser, server, { room: 'policy', name: 'Ada' }));
    assert.deepEqual(page.errors.map(String), [], 'the client itself violates nothing');

    // What the policy forbids is blocked, and caught.
    await page.evaluate(() => {
      const script = document.createElement('script');
      script.textContent = 'window.injected = true;';
      document.head.append(script);
    });
    await eventually('the violation to be reported', () => page.errors.length > 0);
    assert.match(String(page.errors[0]), /Content Security Policy/);
    assert.equal(await page.evaluate(() => window.injected ?? false), false, 'the inline script did not run');
    await page.context().close();
  });

  test('another page cannot frame the client', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.setContent(`<iframe src="${server.url}/"></iframe>`);
    const frame = await eventually('the frame', () => page.frames().find((candidate) => candidate !== page.mainFrame()));
    await frame.waitForLoadState();
    assert.equal(await frame.locator('#join-form').count(), 0, 'the client did not load in the frame');
    await context.close();
  });
});
