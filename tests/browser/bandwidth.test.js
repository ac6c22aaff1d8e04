// Bandwidth feedback with real Chromium at both ends: a subscriber's REMB reaches the server,
// and the publisher sends at the cap the server aggregates from it.
//
// A publisher alone in a room has nobody's estimate to obey: its congestion controller (fed by
// the server's transport-wide feedback) ramps up on loopback as far as it likes. Once somebody
// subscribes, the server sends the publisher a REMB, and Chromium takes it as the ceiling of its
// own estimate: its `availableOutgoingBitrate` becomes exactly that cap.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  availableOutgoingBitrate, eventually, joinRoom, launchBrowser, participantId, startServer, waitForFlowingMedia,
} from './harness.js';

describe('bandwidth feedback', () => {
  let server;
  let browser;

  before(async () => {
    server = await startServer('bandwidth');
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('a Chromium subscriber sends REMB, and the publisher sends at the cap aggregated from it', async () => {
    const publisher = await joinRoom(browser, server, { room: 'bandwidth', name: 'Publisher' });
    const id = await participantId(publisher);
    const alone = await eventually('the publisher to estimate its uplink', () => availableOutgoingBitrate(publisher));
    assert.deepEqual(server.bitrateCapsSent(id), [], 'nobody subscribes, so there is no cap');

    const subscriber = await joinRoom(browser, server, { room: 'bandwidth', name: 'Subscriber' });
    await waitForFlowingMedia(subscriber, { count: 1, timeout: 10_000 });
    await eventually('REMB from the subscriber', async () => (await server.metrics()).switchyard_rembs_received_total > 0);

    let last = null;
    await eventually('the publisher to send at the cap', async () => {
      const caps = server.bitrateCapsSent(id).slice(-5);
      const available = await availableOutgoingBitrate(publisher);
      last = { caps, available, alone };
      return caps.some((cap) => Math.abs(available - cap) <= cap * 0.01);
    }).catch((error) => {
      throw new Error(`${error.message}: ${JSON.stringify(last)}`);
    });
    assert.ok((await server.metrics()).switchyard_rembs_sent_total > 0);
  });
});
