// The client's pure parts, without a browser: where tiles go (layout.js), what a `view` entry
// says (adaptive-stream.js), the camera's layers and how `layers` changes them (simulcast.js),
// the screen share's `a=content:slides` (connection.js), and where a call's sockets go when
// the servers redirect it or fail (call.js, against scripted sockets and mocked timers).

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { describeView } from '../../client/adaptive-stream.js';
import { Call, MAX_REDIRECTS, redirectTarget } from '../../client/call.js';
import { withContentSlides } from '../../client/connection.js';
import {
  bestLayout, chooseStage, gridLayout, gridPageSize, MIN_TILE_WIDTH_PX, speakerLayout,
} from '../../client/layout.js';
import { applyActiveLayers, CAMERA_ENCODINGS, cameraEncodings, sendEncodings } from '../../client/simulcast.js';

describe('the grid', () => {
  test('six tiles in a laptop window fit on one page, three by two', () => {
    const layout = gridLayout(6, 936, 452, 0);
    assert.deepEqual({ pages: layout.pages, shown: layout.shown, columns: layout.columns }, { pages: 1, shown: 6, columns: 3 });
    assert.ok(layout.tileWidth >= MIN_TILE_WIDTH_PX);
  });

  test('fifty tiles are paged, every page\'s tiles at least the minimum width', () => {
    const size = gridPageSize(50, 936, 406);
    assert.ok(size > 1 && size < 50);
    assert.ok(bestLayout(size, 936, 406).tileWidth >= MIN_TILE_WIDTH_PX);
    assert.ok(bestLayout(size + 1, 936, 406).tileWidth < MIN_TILE_WIDTH_PX, 'one more would not fit');
    const last = gridLayout(50, 936, 406, 99);
    assert.equal(last.page, last.pages - 1, 'a page past the end shows the last');
    assert.equal(last.first + last.shown, 50);
    assert.equal(gridLayout(50, 936, 406, -3).page, 0);
  });

  test('a window too small for one tile at the minimum still shows one a page', () => {
    const layout = gridLayout(3, 150, 100, 1);
    assert.deepEqual({ pageSize: layout.pageSize, pages: layout.pages, first: layout.first }, { pageSize: 1, pages: 3, first: 1 });
  });
});

describe('the speaker view', () => {
  test('the stage is large and 16:9, the strip pages what does not fit across', () => {
    const layout = speakerLayout(20, 1256, 572, 1);
    assert.ok(layout.stageWidth > 4 * layout.tileWidth);
    assert.equal(layout.stageHeight, Math.floor(layout.stageWidth * 9 / 16));
    assert.ok(layout.stageHeight + layout.stripHeight + 8 <= 572);
    assert.equal(layout.first, layout.pageSize);
    assert.ok(layout.pageSize * layout.tileWidth <= 1256);
    assert.equal(layout.pages, Math.ceil(20 / layout.pageSize));
  });

  test('alone, the stage takes all the space', () => {
    const layout = speakerLayout(0, 1600, 900, 0);
    assert.deepEqual({ stageWidth: layout.stageWidth, stripHeight: layout.stripHeight, shown: layout.shown }, { stageWidth: 1600, stripHeight: 0, shown: 0 });
  });

  const tiles = [
    { key: 'self', kind: 'person', participant: null, local: true, hasVideo: true },
    { key: 'self/screen', kind: 'screen', participant: null, local: true, hasVideo: true },
    { key: 'A', kind: 'person', participant: 'A', local: false, hasVideo: false },
    { key: 'B', kind: 'person', participant: 'B', local: false, hasVideo: true },
    { key: 'C', kind: 'person', participant: 'C', local: false, hasVideo: true },
  ];

  test('the active speaker takes the stage, and keeps it while the room is silent', () => {
    assert.equal(chooseStage(tiles, { active: 'C', previous: 'B' }), 'C');
    assert.equal(chooseStage(tiles, { active: null, previous: 'C' }), 'C');
  });

  test('before anybody speaks, the first other person with video', () => {
    assert.equal(chooseStage(tiles, { active: null, previous: null }), 'B');
  });

  test('speaking ourselves does not put us on the stage', () => {
    assert.equal(chooseStage(tiles, { active: 'me', previous: 'C' }), 'C');
  });

  test('someone else\'s screen share comes before the speaker; our own does not', () => {
    const shared = [...tiles, { key: 'B/screen', kind: 'screen', participant: 'B', local: false, hasVideo: true }];
    assert.equal(chooseStage(shared, { active: 'C', previous: 'C' }), 'B/screen');
  });

  test('alone, our own tile', () => {
    assert.equal(chooseStage(tiles.slice(0, 1), { active: null, previous: null }), 'self');
    assert.equal(chooseStage([], { active: null, previous: null }), null);
  });
});

describe('a `view` entry', () => {
  const source = { participant: 'PA_0b1c2d3e4f50', track: 'camera' };

  test('gives the size in device pixels', () => {
    assert.deepEqual(describeView(source, { width: 320.4, height: 180.2, onScreen: true }, 2),
      { ...source, width: 641, height: 360, visible: true });
  });

  test('says hidden, with no size, off screen or with no box', () => {
    assert.deepEqual(describeView(source, { width: 320, height: 180, onScreen: false }, 1),
      { ...source, width: 0, height: 0, visible: false });
    assert.equal(describeView(source, { width: 0, height: 0, onScreen: true }, 1).visible, false);
  });

  test('keeps within the protocol\'s largest size', () => {
    assert.equal(describeView(source, { width: 20_000, height: 100, onScreen: true }, 1).width, 16384);
  });
});

describe('the camera\'s layers', () => {
  const rids = (encodings) => encodings?.map(({ rid, scaleResolutionDownBy }) => `${rid}/${scaleResolutionDownBy}`) ?? null;

  test('a 1280x720 camera, or 960x540, sends three: a quarter, half and all of it', () => {
    assert.deepEqual(rids(cameraEncodings({ width: 1280, height: 720 })), ['q/4', 'h/2', 'f/1']);
    assert.deepEqual(rids(cameraEncodings({ width: 960, height: 540 })), ['q/4', 'h/2', 'f/1']);
  });

  test('a 640x360 or 640x480 camera sends two, the full picture among them', () => {
    assert.deepEqual(rids(cameraEncodings({ width: 640, height: 360 })), ['h/2', 'f/1']);
    assert.deepEqual(rids(cameraEncodings({ width: 640, height: 480 })), ['h/2', 'f/1']);
  });

  test('a smaller camera, or one whose size is unknown, sends one layer', () => {
    assert.equal(cameraEncodings({ width: 320, height: 180 }), null);
    assert.equal(cameraEncodings({}), null);
  });
});

describe('`layers`', () => {
  test('switches the layers not named off, and says whether anything changed', () => {
    const encodings = sendEncodings(CAMERA_ENCODINGS).map((encoding) => ({ ...encoding, active: true }));
    assert.equal(applyActiveLayers(encodings, ['q', 'h']), true);
    assert.deepEqual(encodings.map((encoding) => encoding.active), [true, true, false]);
    assert.equal(applyActiveLayers(encodings, ['q', 'h']), false);
    assert.equal(applyActiveLayers(encodings, ['q', 'h', 'f']), true);
    assert.deepEqual(encodings.map((encoding) => encoding.active), [true, true, true]);
  });

  test('never switches every layer off, and leaves a single encoding alone', () => {
    const encodings = sendEncodings(CAMERA_ENCODINGS).map((encoding) => ({ ...encoding, active: true }));
    assert.equal(applyActiveLayers(encodings, []), false);
    assert.equal(applyActiveLayers(encodings, ['x']), false);
    assert.ok(encodings.every((encoding) => encoding.active));
    const single = [{ active: true }];
    assert.equal(applyActiveLayers(single, ['q']), false);
  });

  test('the camera\'s encodings are fresh copies each time', () => {
    const first = sendEncodings(CAMERA_ENCODINGS);
    first[0].active = false;
    assert.equal(sendEncodings(CAMERA_ENCODINGS)[0].active, undefined);
  });
});

describe('a screen share\'s media section', () => {
  const sdp = [
    'v=0', 'o=- 1 2 IN IP4 127.0.0.1', 's=-', 't=0 0', 'a=group:BUNDLE 0 1 2',
    'm=audio 9 UDP/TLS/RTP/SAVPF 111', 'a=mid:0', 'a=sendonly',
    'm=video 9 UDP/TLS/RTP/SAVPF 96', 'a=mid:1', 'a=sendonly',
    'm=video 9 UDP/TLS/RTP/SAVPF 96', 'a=mid:2', 'a=sendonly', '',
  ].join('\r\n');

  test('says `a=content:slides`, and no other section does', () => {
    const marked = withContentSlides(sdp, new Set(['2']));
    assert.equal(marked, sdp.replace('a=mid:2\r\n', 'a=mid:2\r\na=content:slides\r\n'));
  });

  test('is left alone when there is none, or it says so already', () => {
    assert.equal(withContentSlides(sdp, new Set()), sdp);
    const once = withContentSlides(sdp, new Set(['1']));
    assert.equal(withContentSlides(once, new Set(['1'])), once);
  });
});

/**
 * A WebSocket the test plays the server of: every one the client opens is kept in
 * `ScriptedSocket.opened`; the test accepts or refuses it, says things on it and closes it.
 */
class ScriptedSocket extends EventTarget {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSING = 2;
  static CLOSED = 3;
  /** @type {ScriptedSocket[]} */
  static opened = [];

  readyState = ScriptedSocket.CONNECTING;
  /** What the client sent, parsed. */
  sent = [];
  closedWith = null;

  constructor(url) {
    super();
    this.url = url;
    ScriptedSocket.opened.push(this);
  }

  send(data) {
    this.sent.push(JSON.parse(data));
  }

  close(code = 1005, reason = '') {
    if (this.readyState === ScriptedSocket.CLOSED) return;
    this.closedWith = code;
    this.#closed(code, reason);
  }

  accept() {
    this.readyState = ScriptedSocket.OPEN;
    this.dispatchEvent(new Event('open'));
  }

  /** The server cannot be reached: the socket never opens. */
  refuse() {
    this.dispatchEvent(new Event('error'));
    this.#closed(1006, '');
  }

  say(message) {
    this.dispatchEvent(new MessageEvent('message', { data: JSON.stringify(message) }));
  }

  /** The server closes the socket. */
  hangUp(code) {
    this.#closed(code, '');
  }

  #closed(code, reason) {
    this.readyState = ScriptedSocket.CLOSED;
    this.dispatchEvent(Object.assign(new Event('close'), { code, reason }));
  }
}

describe('a call in a cluster', () => {
  const ENTRY = 'ws://entry.test/ws';
  let states;
  let call;

  /** Lets the client's pending promise steps run. */
  const settle = () => new Promise((resolve) => { setImmediate(resolve); });
  const latest = () => ScriptedSocket.opened.at(-1);
  /** Accepts the latest socket and returns the `join` the client sent on it. */
  const acceptLatest = async () => {
    latest().accept();
    await settle();
    assert.equal(latest().sent.length, 1, 'one message on a new socket');
    return latest().sent[0];
  };

  const start = (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    globalThis.WebSocket = ScriptedSocket;
    ScriptedSocket.opened = [];
    states = [];
    call = new Call({ url: ENTRY, room: 'standup', name: 'Ada', media: {}, token: 'T' });
    call.addEventListener('state', ({ detail }) => states.push(detail));
    let refused = null;
    call.join().catch((error) => { refused = error; });
    return { refused: () => refused };
  };

  test('follows a redirect at once with the same join, and no more than three in a row', async (t) => {
    start(t);
    const join = await acceptLatest();
    assert.deepEqual(join, { type: 'join', room: 'standup', name: 'Ada', token: 'T' });
    const hops = ['ws://a.test:7001/ws', 'wss://b.test/node/2/ws', 'ws://c.test/ws'];
    for (const hop of hops) {
      latest().say({ type: 'redirect', url: hop });
      assert.equal(latest().url, hop, 'the named node is opened at once, before any timer');
      assert.deepEqual(await acceptLatest(), join, 'the same join');
    }
    assert.equal(states.filter(({ state }) => state === 'reconnecting').length, 0, 'redirects are not failures');
    // One more is a failed attempt: back to the entry, after the backoff's first pause.
    latest().say({ type: 'redirect', url: 'ws://d.test/ws' });
    assert.equal(ScriptedSocket.opened.length, 1 + MAX_REDIRECTS);
    assert.equal(states.at(-1).state, 'reconnecting');
    assert.equal(states.at(-1).delay, 250);
    t.mock.timers.tick(249);
    assert.equal(ScriptedSocket.opened.length, 1 + MAX_REDIRECTS);
    t.mock.timers.tick(1);
    assert.equal(latest().url, ENTRY);
    // The count starts again at the entry.
    await acceptLatest();
    latest().say({ type: 'redirect', url: hops[0] });
    assert.equal(latest().url, hops[0]);
    call.leave();
  });

  test('a redirect to anything but ws: or wss: is a failed attempt', async (t) => {
    start(t);
    await acceptLatest();
    latest().say({ type: 'redirect', url: 'https://elsewhere.test/ws' });
    assert.equal(ScriptedSocket.opened.length, 1);
    assert.equal(states.at(-1).state, 'reconnecting');
    assert.equal(redirectTarget('ws://a.test/ws', 0), 'ws://a.test/ws');
    assert.equal(redirectTarget('wss://a.test/node/1/ws', MAX_REDIRECTS - 1), 'wss://a.test/node/1/ws');
    assert.equal(redirectTarget('wss://a.test/ws', MAX_REDIRECTS), null);
    assert.equal(redirectTarget('javascript:alert(1)', 0), null);
    assert.equal(redirectTarget('not a url', 0), null);
    assert.equal(redirectTarget(undefined, 0), null);
    call.leave();
  });

  test('after a failure it rejoins through the entry; an unreachable redirect target within a second', async (t) => {
    start(t);
    // The entry is down a few times: the pauses grow.
    for (const [index, delay] of [250, 1000, 2000, 4000].entries()) {
      latest().refuse();
      await settle();
      assert.equal(states.at(-1).delay, delay);
      t.mock.timers.tick(delay);
      assert.equal(ScriptedSocket.opened.length, index + 2);
      assert.equal(latest().url, ENTRY);
    }
    await acceptLatest();
    latest().say({ type: 'redirect', url: 'ws://dead.test/ws' });
    assert.equal(latest().url, 'ws://dead.test/ws');
    // The named node just died: the entry again within a second, not after 8 s.
    latest().refuse();
    await settle();
    assert.equal(states.at(-1).state, 'reconnecting');
    assert.ok(states.at(-1).delay <= 1000, `a pause of ${states.at(-1).delay} ms`);
    t.mock.timers.tick(states.at(-1).delay);
    assert.equal(latest().url, ENTRY);
    // A redirect target that drops the socket before `joined`: back to the entry too.
    await acceptLatest();
    latest().say({ type: 'redirect', url: 'ws://b.test/ws' });
    await acceptLatest();
    latest().hangUp(1006);
    await settle();
    t.mock.timers.tick(states.at(-1).delay);
    assert.equal(latest().url, ENTRY);
    call.leave();
  });

  test('`cluster_unavailable` is not the end: the call says so and tries again after a pause', async (t) => {
    const joining = start(t);
    await acceptLatest();
    latest().say({ type: 'error', code: 'cluster_unavailable', message: 'the cluster directory is out of reach' });
    await settle();
    latest().hangUp(1013);
    await settle();
    assert.equal(joining.refused(), null, 'the join is still under way');
    assert.deepEqual(
      { state: states.at(-1).state, why: states.at(-1).why, delay: states.at(-1).delay },
      { state: 'reconnecting', why: 'The server cannot place this room right now', delay: 250 },
    );
    t.mock.timers.tick(250);
    assert.equal(latest().url, ENTRY);
    assert.equal(ScriptedSocket.opened.length, 2);
    call.leave();
  });

  test('a room that moved to another node is joined again through the entry', async (t) => {
    start(t);
    await acceptLatest();
    latest().say({ type: 'redirect', url: 'ws://b.test/ws' });
    await acceptLatest();
    latest().say({ type: 'error', code: 'room_moved', message: 'the room now lives on another node' });
    await settle();
    latest().hangUp(4007);
    await settle();
    assert.deepEqual(
      { state: states.at(-1).state, why: states.at(-1).why },
      { state: 'reconnecting', why: 'This room moved to another server' },
    );
    t.mock.timers.tick(states.at(-1).delay);
    assert.equal(latest().url, ENTRY, 'not the node that let the room go');
    call.leave();
  });
});
