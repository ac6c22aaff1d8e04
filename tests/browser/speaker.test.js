// Active speaker in real Chromium: in a room of four where one microphone hears a tone and the
// three others silence, every page shows that person speaking within a second of them
// unmuting, and the speaker view puts them large.
//
// Chromium plays a WAV file as its fake microphone (`--use-file-for-fake-audio-capture`), one
// file per browser: the speaker's page runs in a browser of its own. The tone comes in bursts
// with short pauses, as speech does, so the microphone's noise suppression does not learn it as
// background noise and take it away.

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  eventually, join, joinRoom, launchBrowser, openClient, participantId, screenshot, startServer, tileMedia,
  waitForRemoteTiles, writeWav,
} from './harness.js';

const ROOM = 'speaker';
const QUIET = ['Quiet One', 'Quiet Two', 'Quiet Three'];

/** 440 Hz with its octave, in bursts of 350 ms with 150 ms pauses, softened at the edges. */
function toneBursts(t) {
  const within = t % 0.5;
  if (within >= 0.35) return 0;
  const edge = Math.min(1, within / 0.02, (0.35 - within) / 0.02);
  return edge * (0.5 * Math.sin(2 * Math.PI * 440 * t) + 0.15 * Math.sin(2 * Math.PI * 880 * t));
}

/** Whether `page` shows `participant` as speaking: their remote tile, or (`self`) our own. */
function showsSpeaking(page, { participant, self }) {
  return page.waitForFunction(({ id, own }) => {
    const tile = own ? document.querySelector('.tile[data-local][data-kind="person"]')
      : document.querySelector(`.tile[data-remote][data-kind="person"][data-participant="${id}"]`);
    return tile !== null && tile.hasAttribute('data-speaking');
  }, { id: participant, own: self }, { polling: 50, timeout: 5_000 });
}

describe('active speaker in a room of four', () => {
  let server;
  let directory;
  let toneBrowser;
  let quietBrowser;
  let speaker;
  let speakerId;
  let quiet = [];

  before(async () => {
    directory = await mkdtemp(path.join(os.tmpdir(), 'switchyard-speaker-'));
    const tone = await writeWav(path.join(directory, 'tone.wav'), 2, toneBursts);
    const silence = await writeWav(path.join(directory, 'silence.wav'), 2, () => 0);
    server = await startServer('speaker');
    toneBrowser = await launchBrowser({ args: [`--use-file-for-fake-audio-capture=${tone}`] });
    quietBrowser = await launchBrowser({ args: [`--use-file-for-fake-audio-capture=${silence}`] });
    quiet = await Promise.all(QUIET.map((name) => joinRoom(quietBrowser, server, { room: ROOM, name })));
    // The speaker comes in muted, so the test knows when the tone starts reaching the room.
    speaker = await openClient(toneBrowser, server, { room: ROOM, name: 'Speaker' });
    await speaker.getByRole('button', { name: 'Microphone', exact: true }).click();
    await speaker.waitForFunction(() => window.switchyard.media.micMuted);
    await join(speaker);
    speakerId = await participantId(speaker);
    for (const page of quiet) await page.getByRole('button', { name: 'Layout', exact: true }).click();
    // Speaking shows from the sound alone: the pages need their tiles and a media connection.
    await Promise.all([speaker, ...quiet].map(async (page) => {
      await waitForRemoteTiles(page, 3, 15_000);
      await page.waitForFunction(() => window.switchyard.call.connection?.state === 'connected', null, { timeout: 15_000 });
    }));
    // The quiet pages hear the two others: their silence arrives (the speaker's muted sound does not).
    await Promise.all(quiet.map((page) => eventually('audio from the other quiet pages', async () => {
      const media = await tileMedia(page);
      return Object.entries(media).filter(([key]) => key !== speakerId).every(([, tile]) => tile.audioPackets > 0);
    }, { timeout: 15_000 })));
  });

  after(async () => {
    await toneBrowser?.close();
    await quietBrowser?.close();
    await server?.stop();
    if (directory) await rm(directory, { recursive: true, force: true });
  });

  test('before anybody speaks, nobody is shown speaking and the stage is somebody else', async () => {
    for (const page of [speaker, ...quiet]) {
      assert.equal(await page.locator('.tile[data-speaking]').count(), 0);
    }
    for (const page of quiet) {
      const stage = await page.evaluate(() => window.switchyard.grid.stage);
      assert.ok(stage !== null && stage !== speakerId, `the stage shows another tile until the speaker speaks (${stage})`);
    }
  });

  test('every page shows the one with the tone speaking within 1 s of their unmuting', async (t) => {
    const start = Date.now();
    await speaker.getByRole('button', { name: 'Mic', exact: true }).click();
    const times = await Promise.all([speaker, ...quiet].map(async (page) => {
      await showsSpeaking(page, { participant: speakerId, self: page === speaker });
      return Date.now() - start;
    }));
    t.diagnostic(`shown speaking after ${times.join(', ')} ms (the speaker's own page, then the three others)`);
    for (const elapsed of times) assert.ok(elapsed <= 1_000, `shown speaking within 1 s (${elapsed} ms)`);
    for (const page of quiet) {
      const speaking = await page.$$eval('.tile[data-speaking]', (tiles) => tiles.map((tile) => tile.dataset.participant ?? 'self'));
      assert.deepEqual(speaking, [speakerId], 'nobody else is shown speaking');
    }
  });

  test('the quiet pages hear the tone from the speaker and silence from the others', async () => {
    // What the room hears, measured where it arrives: the test's own check that only one is loud.
    await Promise.all(quiet.map((page) => eventually('the tone heard, and silence', () => page.evaluate(async (id) => {
      const report = await window.switchyard.call.connection.peerConnection.getStats();
      const levels = {};
      report.forEach((stats) => {
        if (stats.type === 'inbound-rtp' && stats.kind === 'audio') levels[stats.mid] = stats.audioLevel ?? 0;
      });
      const heard = [...document.querySelectorAll('.tile[data-remote][data-kind="person"]')]
        .map((tile) => ({ speaker: tile.dataset.participant === id, level: levels[tile.dataset.audioMid] ?? 0 }));
      return heard.length === 3 && heard.every(({ speaker, level }) => (speaker ? level > 0.05 : level < 0.01));
    }, speakerId), { timeout: 5_000 })));
  });

  test('the speaker view puts them large', async () => {
    await Promise.all(quiet.map((page) => page.waitForFunction((id) => window.switchyard.grid.stage === id, speakerId, { timeout: 3_000 })));
    for (const page of quiet) {
      const sizes = await page.$$eval('.tile:not([hidden])', (tiles) => tiles.map((tile) => ({
        participant: tile.dataset.participant ?? null,
        width: tile.getBoundingClientRect().width,
      })));
      const largest = sizes.reduce((best, tile) => (tile.width > best.width ? tile : best));
      assert.equal(largest.participant, speakerId, 'the speaker is the largest tile');
      assert.ok(sizes.filter((tile) => tile !== largest).every((tile) => tile.width * 2 < largest.width), 'the others are small');
    }
    await screenshot(quiet[0], 'speaker-view.png');
  });

  test('no page reported a script error', () => {
    for (const page of [speaker, ...quiet]) assert.deepEqual(page.errors.map(String), []);
  });
});
