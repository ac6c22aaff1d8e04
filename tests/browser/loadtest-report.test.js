// The load test's HTML report (`loadtest --html`) of the smoke scenario, run against the real
// server, opens in Chromium with nothing to fetch (the browser is offline), and every chart
// is drawn: an SVG of real size with its axes and lines. The page is saved as a screenshot.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';

import { LOADTEST_BINARY, artifacts, launchBrowser, startServer } from './harness.js';

const run = promisify(execFile);

/** The charts the page draws: eight over the run, one of the join times. */
const CHARTS = 9;

describe('the load test HTML report', () => {
  let server;
  let browser;
  let folder;
  let report;

  before(async () => {
    server = await startServer('loadtest-report');
    browser = await launchBrowser();
    folder = await mkdtemp(path.join(os.tmpdir(), 'loadtest-report-'));
    report = path.join(folder, 'smoke.html');
    const websocket = server.url.replace('http://', 'ws://') + '/ws';
    await run(LOADTEST_BINARY, [
      '--url', websocket, '--scenario', 'smoke', '--duration', '5s', '--quiet', '--html', report,
    ], { timeout: 120_000, env: { ...process.env, RUST_LOG: 'error' } });
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    if (folder) await rm(folder, { recursive: true, force: true });
  });

  test('opens offline with every chart drawn, and is saved as a screenshot', async () => {
    const context = await browser.newContext({ viewport: { width: 880, height: 1500 }, offline: true });
    const page = await context.newPage();
    const fetched = [];
    page.on('request', (request) => {
      if (!request.url().startsWith('file:')) fetched.push(request.url());
    });
    await page.goto(pathToFileURL(report).href);

    assert.match(await page.locator('h1').innerText(), /Load test of switchyard/);
    assert.match(await page.locator('table').first().innerText(), /participants joined\s+8\/8/);
    const charts = await page.locator('figure.chart svg').evaluateAll((svgs) => svgs.map((svg) => {
      const box = svg.getBoundingClientRect();
      const lines = [...svg.querySelectorAll('polyline')].map((line) => line.getAttribute('points').trim().split(/\s+/).length);
      return {
        title: svg.querySelector('text')?.textContent.trim() ?? '',
        width: box.width,
        height: box.height,
        texts: svg.querySelectorAll('text').length,
        longestLine: Math.max(0, ...lines),
      };
    }));
    assert.equal(charts.length, CHARTS, JSON.stringify(charts));
    for (const chart of charts) {
      assert.ok(chart.width > 300 && chart.height > 150, `drawn at a real size: ${JSON.stringify(chart)}`);
      assert.ok(chart.texts > 5, `with its caption and axis labels: ${JSON.stringify(chart)}`);
    }
    // The run lasted several seconds: its per-second lines have several points, and the join
    // times' distribution has a line too.
    const packets = charts.find((chart) => chart.title === 'Packets per second');
    assert.ok(packets && packets.longestLine >= 5, JSON.stringify(packets));
    const joins = charts.find((chart) => chart.title === 'Join-time distribution');
    assert.ok(joins && joins.longestLine >= 2, JSON.stringify(joins));
    assert.deepEqual(fetched, [], 'the page needs nothing from the network');

    await mkdir(artifacts, { recursive: true });
    const file = path.join(artifacts, 'loadtest-report.png');
    await page.screenshot({ path: file });
    assert.ok((await stat(file)).size > 20_000, 'the screenshot has content');
    if (process.env.UPDATE_DOCS_SCREENSHOT) await copyFile(file, new URL('../../docs/loadtest-report.png', import.meta.url));
    await context.close();
  });
});
