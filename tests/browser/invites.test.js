// Invite links under access control: a page whose token grants `invite` clicks Invite and gets
// an invite link from the server on its clipboard; a second page opened with that link joins the
// same room as a new person, and each sees and hears the other. A page whose token lacks the
// grant says that inviting needs it. On an open server the button copies the room's link.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  join, joinRoom, launchBrowser, mintToken, openClient, remoteTiles, startServer,
  waitForFlowingMedia, waitForRemoteTiles,
} from './harness.js';

const KEY = 'the-browser-invite-tests-key-0123456789';
// The clipboard needs permissions; a context given a list of permissions has those only, and
// without camera and microphone among them the page's media connection never starts.
const PERMISSIONS = ['camera', 'microphone', 'clipboard-read', 'clipboard-write'];

describe('invite links in the browser client', () => {
  let server;
  let browser;

  before(async () => {
    server = await startServer('invites', { extraArgs: ['--token-key', KEY] });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('an invite-granting page copies an invite link, and the link admits a new person to its room', async () => {
    const token = await mintToken(KEY, { room: 'offsite', identity: 'ada', name: 'Ada', grants: ['invite'] });
    const ada = await joinRoom(browser, server, {
      params: { token },
      permissions: PERMISSIONS,
    });
    assert.equal(await ada.evaluate(() => window.switchyard.call.grants.invite), true);

    await ada.getByRole('button', { name: 'Invite' }).click();
    await ada.locator('#status', { hasText: 'Invite link copied' }).waitFor({ timeout: 10_000 });
    const copied = new URL(await ada.evaluate(() => navigator.clipboard.readText()));
    assert.equal(copied.origin, new URL(server.url).origin);
    assert.equal(copied.searchParams.get('room'), 'offsite');
    const invite = copied.searchParams.get('token');
    assert.ok(invite && invite !== token, `an invite link's own token: ${copied}`);

    const guest = await openClient(browser, server, {
      name: 'Grace',
      params: Object.fromEntries(copied.searchParams),
    });
    assert.equal(await guest.locator('#join-room').inputValue(), 'offsite');
    await join(guest);
    assert.equal(await guest.evaluate(() => window.switchyard.call.room), 'offsite');
    // The guest is a person of its own, with a token of its own to rejoin with.
    assert.notEqual(await guest.evaluate(() => window.switchyard.call.token), invite);

    for (const page of [ada, guest]) {
      await waitForRemoteTiles(page, 1, 10_000);
      await waitForFlowingMedia(page, { count: 1, timeout: 20_000 });
    }
    const [seenByGuest] = await remoteTiles(guest);
    assert.equal(seenByGuest.name, 'Ada');
    const [seenByAda] = await remoteTiles(ada);
    assert.equal(seenByAda.name, 'Grace');

    for (const page of [ada, guest]) assert.deepEqual(page.errors.map(String), []);
    await Promise.all([ada, guest].map((page) => page.context().close()));
  });

  test('a page whose token does not grant `invite` says that inviting needs it', async () => {
    const token = await mintToken(KEY, { room: 'offsite', identity: 'bob', name: 'Bob' });
    const bob = await joinRoom(browser, server, {
      params: { token },
      permissions: PERMISSIONS,
    });
    await bob.evaluate(() => navigator.clipboard.writeText('untouched'));
    await bob.getByRole('button', { name: 'Invite' }).click();
    await bob.locator('#status', { hasText: 'Inviting people to this room needs an access link that allows it' })
      .waitFor({ timeout: 10_000 });
    assert.equal(await bob.evaluate(() => navigator.clipboard.readText()), 'untouched', 'no link that could not admit anybody');
    assert.deepEqual(bob.errors.map(String), []);
    await bob.context().close();
  });
});

describe('the Invite button on an open server', () => {
  let server;
  let browser;

  before(async () => {
    server = await startServer('invites-open');
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('copies the room\'s link, which admits anybody there', async () => {
    const page = await joinRoom(browser, server, { room: 'open-room', name: 'Cy', permissions: PERMISSIONS });
    await page.getByRole('button', { name: 'Invite' }).click();
    await page.locator('#status', { hasText: 'Link copied' }).waitFor({ timeout: 10_000 });
    const copied = new URL(await page.evaluate(() => navigator.clipboard.readText()));
    assert.equal(copied.origin, new URL(server.url).origin);
    assert.deepEqual([...copied.searchParams], [['room', 'open-room']]);
    assert.deepEqual(page.errors.map(String), []);
  });
});
