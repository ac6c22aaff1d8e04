// Several nodes on one Redis, in real Chromium: two pages that enter through two nodes meet on
// the one node hosting their room; when that node is killed, or shut down, the pages are back
// in their room on another node, through the front door (Caddy), with media flowing, and the
// cluster's view forgets the node.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  eventually, joinRoom, launchBrowser, openClient, participantId, remoteTiles,
  startCluster, waitForFlowingMedia, waitForRemoteTiles,
} from './harness.js';

/** A short lease, so that a dead node's entries lapse quickly. */
const LEASE_SECS = 3;
const NODE_ARGS = ['--cluster-lease', String(LEASE_SECS)];

/** The WebSocket URL of a page's own server: where its call enters. */
const entryOf = (httpUrl) => `${httpUrl.replace(/^http/, 'ws')}/ws`;

/** The node hosting `room` as `node` reads the cluster: its id, or null; never two. */
async function hostOf(node, room) {
  const view = await node.cluster();
  const entries = view.rooms.filter((entry) => entry.room === room);
  assert.ok(entries.length <= 1, `one entry at most for ${room}: ${JSON.stringify(view.rooms)}`);
  return entries[0]?.node ?? null;
}

/** Clicks "Join room" and waits until joined; a failure tells what the page reported. */
async function joinWithin(page, timeout) {
  await page.getByRole('button', { name: 'Join room' }).click();
  try {
    await page.waitForFunction(() => window.switchyard.call?.state === 'joined', null, { timeout });
  } catch (error) {
    const sockets = await page.evaluate(() => window.testSockets.map((socket) => socket.url));
    throw new Error(`${error.message}\nsockets: ${sockets.join(' ')}\npage errors: ${page.errors.map(String).join('\n')}`);
  }
}

/** The URLs of the sockets a page opened, oldest first. */
const socketUrls = (page) => page.evaluate(() => window.testSockets.map((socket) => socket.url));

/** Remembers how the page's current socket closes, in `window.testClosedWith`. */
const watchClose = (page) => page.evaluate(() => {
  window.testClosedWith = null;
  window.testSockets.at(-1).addEventListener('close', (event) => { window.testClosedWith = event.code; }, { once: true });
});

/**
 * Waits until every page has joined again (a new membership) and sees and hears the others,
 * by `deadline` (ms since the epoch).
 */
async function waitForRejoin(pages, before, deadline) {
  await Promise.all(pages.map(async (page, index) => {
    await page.waitForFunction(
      (old) => window.switchyard.call?.state === 'joined' && window.switchyard.call.self !== old,
      before[index],
      { timeout: Math.max(1, deadline - Date.now()), polling: 100 },
    );
    await waitForRemoteTiles(page, pages.length - 1, Math.max(1, deadline - Date.now()));
    await waitForFlowingMedia(page, { count: pages.length - 1, timeout: Math.max(1, deadline - Date.now()) });
  }));
}

/**
 * Joins a new `room` through `entry` from `page` without the client, following redirects, and
 * keeps the socket open: resolves with the socket URLs it went through. `closeProbes` closes
 * every socket so opened.
 */
function probeJoin(page, entry, room) {
  return page.evaluate(async ({ url: first, room: wanted }) => {
    window.probes ??= [];
    const urls = [];
    let url = first;
    for (let hop = 0; hop < 4; hop += 1) {
      urls.push(url);
      const socket = new WebSocket(url);
      window.probes.push(socket);
      const reply = await new Promise((resolve, reject) => {
        socket.addEventListener('open', () => socket.send(JSON.stringify({ type: 'join', room: wanted, name: 'Probe' })));
        socket.addEventListener('message', (event) => resolve(JSON.parse(event.data)), { once: true });
        socket.addEventListener('close', (event) => reject(new Error(`closed ${event.code} before an answer at ${url}`)), { once: true });
      });
      if (reply.type === 'joined') return urls;
      if (reply.type !== 'redirect') throw new Error(`answered ${JSON.stringify(reply)} at ${url}`);
      url = reply.url;
    }
    throw new Error(`still redirected after ${urls.join(' -> ')}`);
  }, { url: entry, room });
}

const closeProbes = (page) => page.evaluate(() => {
  for (const socket of window.probes ?? []) socket.close();
  window.probes = [];
});

describe('a cluster', () => {
  let browser;

  before(async () => {
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
  });

  describe('two nodes on one Redis', () => {
    let cluster;

    before(async () => {
      cluster = await startCluster('cluster-two-nodes', { size: 2, extraArgs: NODE_ARGS });
    });

    after(async () => {
      await cluster?.stop();
    });

    test('two pages entering through two nodes see and hear each other on the node hosting the room', async (t) => {
      const [first, second] = cluster.nodes;
      const pages = await Promise.all([
        openClient(browser, first, { room: 'across', name: 'Ada' }),
        openClient(browser, second, { room: 'across', name: 'Bob' }),
      ]);
      const start = Date.now();
      // At the same moment: the placement must still put the room on one node.
      await Promise.all(pages.map((page) => joinWithin(page, 10_000)));
      await Promise.all(pages.map(async (page) => {
        await waitForRemoteTiles(page, 1, 10_000);
        await waitForFlowingMedia(page, { count: 1, timeout: Math.max(1, start + 10_000 - Date.now()) });
      }));
      t.diagnostic(`both pages saw and heard each other ${Date.now() - start} ms after "Join room"`);
      assert.deepEqual((await remoteTiles(pages[0])).map((tile) => tile.name), ['Bob']);
      assert.deepEqual((await remoteTiles(pages[1])).map((tile) => tile.name), ['Ada']);

      // Both nodes read the same single host.
      const hosts = await Promise.all(cluster.nodes.map((node) => hostOf(node, 'across')));
      assert.ok(hosts[0] !== null && hosts[0] === hosts[1], `one host for the room: ${hosts}`);
      const host = cluster.node(hosts[0]);
      assert.equal(host.nodeId, host.id, 'the start line names the node');

      // The page that entered at the other node was redirected to the host, once; the other was not.
      const sockets = await Promise.all(pages.map(socketUrls));
      for (const [index, node] of [first, second].entries()) {
        const expected = node === host ? [entryOf(node.url)] : [entryOf(node.url), entryOf(host.url)];
        assert.deepEqual(sockets[index], expected, `the sockets of page ${index}`);
      }
      const redirects = await Promise.all(cluster.nodes.map(async (node) => (await node.metrics()).switchyard_cluster_redirects_total));
      assert.deepEqual(redirects.map((count) => count ?? 0).sort(), [0, 1], `redirects per node: ${redirects}`);

      // The host reports both participants in the cluster's view.
      await eventually('the host reported with two participants and one room', async () => {
        const view = await cluster.nodes[0].cluster();
        const entry = view.nodes.find((node) => node.id === hosts[0]);
        return entry?.participants === 2 && entry.rooms === 1 && view.nodes.length === 2;
      }, { timeout: LEASE_SECS * 1000 + 2_000 });
      for (const page of pages) assert.deepEqual(page.errors.map(String), []);
      await Promise.all(pages.map((page) => page.context().close()));
    });
  });

  describe('three nodes behind Caddy, one killed', () => {
    let cluster;

    before(async () => {
      cluster = await startCluster('cluster-kill', { size: 3, frontDoor: true, extraArgs: NODE_ARGS });
    });

    after(async () => {
      await cluster?.stop();
    });

    let victim;
    let pages = [];

    test('the pages are back in their room on another node, with media flowing, within 10 s of the kill', async (t) => {
      pages = await Promise.all(['Ada', 'Bob'].map((name) => joinRoom(browser, cluster, { room: 'failover', name })));
      for (const page of pages) await waitForFlowingMedia(page, { count: 1, timeout: 10_000 });
      const host = await hostOf(cluster.nodes[0], 'failover');
      victim = cluster.node(host);
      assert.ok(victim, `the room is hosted on a node of the cluster: ${host}`);
      const before = await Promise.all(pages.map(participantId));
      const socketsBefore = await Promise.all(pages.map(async (page) => (await socketUrls(page)).length));

      const killedAt = Date.now();
      process.kill(victim.pid, 'SIGKILL');
      await waitForRejoin(pages, before, killedAt + 10_000);
      t.diagnostic(`both pages saw and heard each other again ${Date.now() - killedAt} ms after the kill`);

      const live = cluster.nodes.find((node) => node !== victim);
      const newHost = await hostOf(live, 'failover');
      assert.ok(newHost && newHost !== victim.id, `placed again on a live node: ${newHost}`);
      // The first try after the drop went through the front door, not to the dead node.
      for (const [index, page] of pages.entries()) {
        const after = (await socketUrls(page)).slice(socketsBefore[index]);
        assert.equal(after[0], entryOf(cluster.url), `page ${index} rejoined through ${after.join(', ')}`);
      }
    });

    test('after its lease, the cluster holds no entry for the dead node nor a room on it', async () => {
      const live = cluster.nodes.find((node) => node !== victim);
      const dead = victim.id;
      await eventually('no trace of the dead node', async () => {
        const view = await live.cluster();
        return !view.nodes.some((node) => node.id === dead) && !view.rooms.some((room) => room.node === dead);
      }, { timeout: LEASE_SECS * 1000 + 3_000 });
      await eventually('no key of the dead node in Redis', async () => {
        const [key, member] = await Promise.all([
          cluster.redis.command('EXISTS', `switchyard:node:${dead}`),
          cluster.redis.command('ZSCORE', 'switchyard:nodes', dead),
        ]);
        return key === '0' && member === '';
      }, { timeout: LEASE_SECS * 1000 + 3_000 });
      assert.notEqual(await cluster.redis.command('GET', 'switchyard:room:failover'), dead);
      for (const page of pages) assert.deepEqual(page.errors.map(String), []);
      await Promise.all(pages.map((page) => page.context().close()));
    });
  });

  describe('three nodes behind Caddy, one shut down', () => {
    let cluster;

    before(async () => {
      cluster = await startCluster('cluster-drain', { size: 3, frontDoor: true, extraArgs: NODE_ARGS });
    });

    after(async () => {
      await cluster?.stop();
    });

    test('the calls end gracefully and rejoin on another node; no new room goes to the draining node', async (t) => {
      const pages = await Promise.all(['Ada', 'Bob'].map((name) => joinRoom(browser, cluster, { room: 'drain', name })));
      for (const page of pages) await waitForFlowingMedia(page, { count: 1, timeout: 10_000 });
      const host = await hostOf(cluster.nodes[0], 'drain');
      const victim = cluster.node(host);
      assert.ok(victim, `the room is hosted on a node of the cluster: ${host}`);
      const live = cluster.nodes.filter((node) => node !== victim);
      const before = await Promise.all(pages.map(participantId));
      for (const page of pages) await watchClose(page);
      // A page that only probes: it opens sockets to join new rooms.
      const prober = await browser.newPage();

      // From the signal on, every look at the cluster shows the node draining or gone.
      const looks = [];
      let watching = true;
      const watcher = (async () => {
        while (watching) {
          try {
            const view = await live[0].cluster();
            looks.push({ at: Date.now(), entry: view.nodes.find((node) => node.id === host) ?? null });
          } catch (error) {
            looks.push({ at: Date.now(), error: error.message });
          }
          await new Promise((resolve) => setTimeout(resolve, 50)); // the polling interval
        }
      })();
      const signalledAt = Date.now();
      process.kill(victim.pid, 'SIGTERM');
      const drainingOrGone = ({ at, entry }) => at > signalledAt && (entry === null || entry?.draining === true);
      try {
        await eventually('the node draining or gone in the cluster\'s view', () => looks.some(drainingOrGone), { timeout: 2_000, interval: 20 });

        // New rooms, while it drains (or once it is gone), land elsewhere.
        for (const room of ['fresh-1', 'fresh-2', 'fresh-3']) {
          const path = await probeJoin(prober, entryOf(cluster.url), room);
          const placed = await hostOf(live[0], room);
          assert.ok(placed && placed !== host, `${room} was placed on ${placed} (through ${path.join(' -> ')})`);
          assert.ok(path.every((url) => !url.includes(`/node/${host}/`)), `nothing sent ${room} to ${host}: ${path.join(' -> ')}`);
        }
        await closeProbes(prober);

        await waitForRejoin(pages, before, signalledAt + 10_000);
        t.diagnostic(`both pages saw and heard each other again ${Date.now() - signalledAt} ms after SIGTERM`);
        const newHost = await hostOf(live[0], 'drain');
        assert.ok(newHost && newHost !== host, `the room moved to a live node: ${newHost}`);
        for (const page of pages) {
          assert.equal(await page.evaluate(() => window.testClosedWith), 1001, 'the old socket was closed as "going away"');
        }
        assert.deepEqual(await victim.exited, { code: 0, signal: null }, 'the node exits 0');
        // It took its entries away itself: no need to wait for its lease.
        const view = await live[0].cluster();
        assert.ok(!view.nodes.some((node) => node.id === host), `${host} left the cluster: ${JSON.stringify(view.nodes)}`);
        assert.ok(!view.rooms.some((room) => room.node === host), `no room on ${host}: ${JSON.stringify(view.rooms)}`);
        assert.equal(await cluster.redis.command('EXISTS', `switchyard:node:${host}`), '0');
      } finally {
        watching = false;
        await watcher;
      }
      // Once it showed as draining, it never showed as taking rooms again.
      const seen = looks.slice(looks.findIndex(drainingOrGone));
      assert.deepEqual(seen.filter((look) => !drainingOrGone(look)), [], 'every look after the first showing it draining');
      t.diagnostic(`draining looks: ${seen.filter(({ entry }) => entry).length}, gone looks: ${seen.filter(({ entry }) => !entry).length}`);
      assert.doesNotMatch(victim.log.join(''), /panicked/);
      for (const page of pages) assert.deepEqual(page.errors.map(String), []);
      await prober.close();
      await Promise.all(pages.map((page) => page.context().close()));
    });
  });
});
