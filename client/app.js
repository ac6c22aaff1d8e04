// The page: the join screen, the room view and the screen after leaving, wired to a Call.
//
// URL parameters: `room` and `name` fill in the join form; `video=WIDTHxHEIGHT@FPS` (for
// example `320x180@15`) asks the camera for a smaller picture, which slow machines and tests use.
// `token` is the access token for a server that requires one: it is sent with `join`, and the
// room and name it carries fill in the form. The page takes it out of the address bar as soon as
// it has read it and keeps it in memory only (for rejoining), so it stays out of the history, out
// of links copied from the address bar and off a screen being shared. `relay=1` reaches the media server through TURN
// relays only, as a network that allows nothing else would. A token may be an invite link's: the
// server then makes us a new person and hands us a token of our own, which rejoining uses.
//
// `window.switchyard` exposes the live objects for diagnosis from the browser's console (and
// for the browser tests): {call, media, grid, views}.

import { ViewReporter } from './adaptive-stream.js';
import { Call, JoinRefused } from './call.js';
import { ChatPanel } from './chat.js';
import { ControlBar, DevicePicker } from './controls.js';
import { LocalMedia, parseVideoSize } from './local-media.js';
import { signalingUrl } from './signaling.js';
import { StatusBoard } from './status.js';
import { TileGrid } from './tiles.js';

const ROOM_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
const NAME_KEY = 'switchyard.name';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(window.location.search);

/** The access token: the page's, then the one the server gave us for rejoining (call.token). */
let token = params.get('token');
/** Whether the page was opened with a token: the server has access control on, then. */
const accessControlled = token !== null;
if (token !== null) {
  const address = new URL(window.location.href);
  address.searchParams.delete('token');
  window.history.replaceState(null, '', address);
}
const relay = params.get('relay') === '1';
const media = new LocalMedia(parseVideoSize(params.get('video')));
const views = new ViewReporter((tracks) => call?.sendView(tracks) ?? false);
const grid = new TileGrid($('grid'), {
  pager: { element: $('pager'), previous: $('page-previous'), next: $('page-next'), label: $('page-label') },
  views,
});
const status = new StatusBoard($('status'));
/** @type {Call | null} */
let call = null;

window.switchyard = {
  get call() { return call; },
  media,
  grid,
  views,
};

// ---- Join screen -------------------------------------------------------------------------

const roomInput = $('join-room');
const nameInput = $('join-name');
const tokenClaims = token ? readTokenClaims(token) : null;
roomInput.value = params.get('room') ?? tokenClaims?.room ?? '';
nameInput.value = params.get('name') ?? tokenClaims?.name ?? localStorage.getItem(NAME_KEY) ?? '';
if (!roomInput.value) roomInput.value = `room-${Math.random().toString(36).slice(2, 8)}`;

/**
 * The claims of an access token, read without checking it (only the server can): they tell the
 * room and name to fill in. Null when it is not a readable JWT.
 */
function readTokenClaims(jwt) {
  try {
    const payload = jwt.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const bytes = Uint8Array.from(atob(payload), (char) => char.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return claims !== null && typeof claims === 'object' ? claims : null;
  } catch {
    return null;
  }
}

function showJoinPreview() {
  const preview = $('join-preview');
  // Only a camera is worth showing; an element left waiting on a stream without video would
  // hold back the page's load event.
  const shown = preview.srcObject?.getVideoTracks()[0] ?? null;
  if (shown !== media.camera) preview.srcObject = media.camera ? new MediaStream([media.camera]) : null;
  const showing = media.camera !== null && !media.cameraOff;
  preview.hidden = !showing;
  $('join-preview-off').hidden = showing;
  $('join-preview-off').textContent = media.camera ? 'Camera is off' : 'No camera';
  toggleButton($('join-mic'), media.microphone !== null, !media.micMuted, 'mic');
  toggleButton($('join-camera'), media.camera !== null, !media.cameraOff, 'camera');
  const problem = media.problemText;
  $('media-problem').hidden = problem === null;
  $('media-problem').textContent = problem ?? '';
}

function toggleButton(button, available, on, icon) {
  button.disabled = !available;
  button.setAttribute('aria-pressed', String(available && on));
  button.querySelector('use').setAttribute('href', `#icon-${available && on ? icon : `${icon}-off`}`);
}

$('join-mic').addEventListener('click', () => media.setMicMuted(!media.micMuted));
$('join-camera').addEventListener('click', () => media.setCameraOff(!media.cameraOff));

$('join-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const room = roomInput.value.trim();
  const name = nameInput.value.trim();
  if (!ROOM_PATTERN.test(room)) {
    showJoinError('A room name is 1 to 64 letters, digits, "-" or "_".');
    return;
  }
  if (name.length === 0 || name.length > 64) {
    showJoinError('Please enter your name (up to 64 characters).');
    return;
  }
  localStorage.setItem(NAME_KEY, name);
  enterRoom(room, name);
});

function showJoinError(text) {
  $('join-error').textContent = text;
  $('join-error').hidden = false;
}

// ---- Room view ---------------------------------------------------------------------------

function showScreen(id) {
  for (const screen of ['join-screen', 'room-screen', 'left-screen']) $(screen).hidden = screen !== id;
}

async function enterRoom(room, name) {
  $('join-error').hidden = true;
  const url = new URL(window.location.href);
  url.searchParams.set('room', room);
  url.searchParams.delete('name');
  window.history.replaceState(null, '', url);
  document.title = `${room} · Switchyard`;
  $('room-name').textContent = room;

  call = new Call({ url: signalingUrl(), room, name, media, token, relay });
  watchCall(call);
  showScreen('room-screen');
  showLocalTiles();
  showMediaProblems();
  try {
    await call.join();
  } catch (error) {
    if (error instanceof JoinRefused) {
      leaveRoom();
      showScreen('join-screen');
      showJoinError(error.message);
    }
  }
}

function watchCall(current) {
  const isCurrent = () => current === call;
  current.roster.addEventListener('change', ({ detail }) => {
    if (!isCurrent()) return;
    grid.showParticipant(current.roster, detail.participant);
    showPeopleCount();
  });
  current.addEventListener('state', ({ detail }) => {
    if (!isCurrent()) return;
    switch (detail.state) {
      case 'connecting':
        status.set('connection', 'Connecting…');
        break;
      case 'joined':
        status.clear('connection');
        // A new membership: the server knows nothing of our tiles yet.
        views.reset();
        grid.setSpeakers(current.speakers, current.self);
        if (wasReconnecting) status.flash('Reconnected', 'good');
        wasReconnecting = false;
        break;
      case 'reconnecting':
        wasReconnecting = true;
        grid.clearRemote();
        status.set('connection', `${detail.why ?? 'Connection lost'}. Rejoining the room…`, 'warning');
        break;
      case 'left':
        status.clear('connection');
        break;
    }
    showPeopleCount();
  });
  current.addEventListener('media', ({ detail }) => {
    if (!isCurrent()) return;
    const messages = {
      connecting: ['Connecting media…', 'info'],
      disconnected: ['The media connection was interrupted. Trying to recover…', 'warning'],
      failed: ['The media connection failed. Restarting it…', 'error'],
    };
    const message = messages[detail.state];
    if (message) status.set('media', ...message);
    else status.clear('media');
    if (detail.state === 'connected') status.clear('unreachable');
  });
  current.addEventListener('unreachable', ({ detail }) => {
    if (isCurrent()) status.set('unreachable', detail.message, 'error');
  });
  current.addEventListener('grants', ({ detail }) => {
    if (!isCurrent()) return;
    const cannot = [];
    if (!detail.publish) cannot.push('be seen or heard');
    if (!detail.subscribe) cannot.push('see or hear the others');
    if (!detail.chat) cannot.push('send chat messages');
    status.set('grants', `Your access link does not let you ${cannot.join(', or ')} in this room.`, 'info');
  });
  current.addEventListener('ended', ({ detail }) => {
    if (!isCurrent()) return;
    leaveRoom();
    $('left-message').textContent = detail.message;
    showScreen('left-screen');
  });
  current.addEventListener('notice', ({ detail }) => {
    if (isCurrent()) status.flash(detail.text, detail.level);
  });
  current.addEventListener('speakers', ({ detail }) => {
    if (isCurrent()) grid.setSpeakers(detail, current.self);
  });
  current.addEventListener('chat', ({ detail }) => {
    if (isCurrent()) chat.add(detail);
  });
  current.addEventListener('screen', () => {
    if (isCurrent()) {
      showLocalTiles();
      showControls();
    }
  });
}
let wasReconnecting = false;

function showPeopleCount() {
  const count = call && call.state === 'joined' ? call.roster.size + 1 : null;
  $('people-count').textContent = count === null ? '' : count === 1 ? 'Just you' : `${count} people`;
}

function showLocalTiles() {
  if (!call) return;
  const hasCamera = media.camera !== null;
  grid.setLocal('self', {
    kind: 'person',
    label: `${call.name} (you)`,
    name: call.name,
    tracks: hasCamera ? [media.camera] : [],
    showVideo: hasCamera && !media.cameraOff,
    micMuted: media.microphone === null || media.micMuted,
    cameraOff: !hasCamera || media.cameraOff,
    mirrored: true,
  });
  const screen = call.screen;
  grid.setLocal('self/screen', screen && {
    kind: 'screen',
    label: 'Your screen',
    name: call.name,
    tracks: [screen.track],
    showVideo: true,
    micMuted: false,
    cameraOff: false,
  });
}

function showControls() {
  controls.show({
    hasMic: media.microphone !== null,
    micMuted: media.micMuted,
    hasCamera: media.camera !== null,
    cameraOff: media.cameraOff,
    sharing: call?.sharingScreen ?? false,
    canShare: typeof navigator.mediaDevices?.getDisplayMedia === 'function',
  });
}

function showMediaProblems() {
  const problem = media.problemText;
  if (problem) status.set('devices', problem, 'warning');
  else status.clear('devices');
}

media.addEventListener('change', () => {
  showJoinPreview();
  showLocalTiles();
  showControls();
  if (call) showMediaProblems();
});

const controls = new ControlBar({
  mic: $('mic-button'),
  camera: $('camera-button'),
  screen: $('screen-button'),
  layout: $('layout-button'),
  devices: $('devices-button'),
  leave: $('leave-button'),
}, {
  mic: () => call?.setMicMuted(!media.micMuted),
  camera: () => call?.setCameraOff(!media.cameraOff),
  screen: () => toggleScreenShare(),
  layout: () => {
    grid.setLayout(grid.layout === 'speaker' ? 'grid' : 'speaker');
    controls.showLayout(grid.layout);
  },
  devices: () => devices.open(),
  leave: () => {
    leaveRoom();
    $('left-message').textContent = `You left ${$('room-name').textContent}.`;
    showScreen('left-screen');
  },
});

async function toggleScreenShare() {
  if (!call) return;
  if (call.sharingScreen) {
    call.stopScreenShare();
    return;
  }
  try {
    call.startScreenShare(await media.captureScreen());
  } catch (error) {
    if (error.name !== 'NotAllowedError' && error.name !== 'AbortError') {
      status.flash(`Screen sharing failed: ${error.message}`, 'error');
    }
  }
}

const devices = new DevicePicker({
  dialog: $('devices-dialog'),
  cameras: $('camera-select'),
  microphones: $('microphone-select'),
  error: $('devices-error'),
}, media, async (kind, deviceId) => {
  if (!deviceId) return;
  if (call) await call.switchDevice(kind, deviceId);
  else await media.switchDevice(kind, deviceId).then(({ done }) => done());
});

const chat = new ChatPanel({
  panel: $('chat'),
  list: $('chat-messages'),
  form: $('chat-form'),
  input: $('chat-input'),
  button: $('chat-button'),
  badge: $('chat-unread'),
  close: $('chat-close'),
}, (text) => call?.sendChat(text) ?? false);

grid.addEventListener('autoplay-blocked', () => {
  $('unmute-audio').hidden = false;
});
$('unmute-audio').addEventListener('click', () => {
  grid.enableSound();
  $('unmute-audio').hidden = true;
});

// Invite: on an open server the room's link admits anybody. With access control on, a link
// admits only with a token: a token that grants `invite` lets the page ask the server for an
// invite link; without that grant the page says what is needed.
$('copy-link').addEventListener('click', async () => {
  const room = $('room-name').textContent;
  if (call?.grants.invite) {
    await shareInvite(room, call.token);
  } else if (accessControlled) {
    status.flash('Inviting people to this room needs an access link that allows it: ask whoever gave you yours.', 'info');
  } else {
    await shareLink(pageLink({ room }), 'Link copied: send it to whoever should join.');
  }
});

/** This page's address with `params` as its query: what a link to a room is. */
function pageLink(params) {
  const link = new URL(window.location.href);
  link.search = new URLSearchParams(params).toString();
  link.hash = '';
  return link.href;
}

/** Asks the server for an invite link to `room` with our own `accessToken`, and shares it. */
async function shareInvite(room, accessToken) {
  let answer;
  try {
    const response = await fetch(`/api/rooms/${encodeURIComponent(room)}/invite`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${accessToken}` },
    });
    answer = await response.json().catch(() => null);
    if (!response.ok) throw new Error(answer?.error?.message ?? `the server answered ${response.status}`);
  } catch (failure) {
    status.flash(`Could not make an invite link: ${failure.message}`, 'error');
    return;
  }
  const until = new Date(answer.expires_at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  const people = answer.max_uses === 1 ? 'one person' : `up to ${answer.max_uses} people`;
  await shareLink(pageLink({ room, token: answer.token }), `Invite link copied: it admits ${people} until ${until}.`);
}

/** Copies `link`, or shows it when the clipboard cannot be written. */
async function shareLink(link, copied) {
  try {
    await navigator.clipboard.writeText(link);
    status.flash(copied, 'good');
  } catch {
    status.flash(`Invite others with this link: ${link}`, 'info');
  }
}

function leaveRoom() {
  if (!call) return;
  // Rejoining takes the token the call last joined with (its own, after an invite link).
  token = call.token;
  call.stopScreenShare();
  call.leave();
  call = null;
  grid.clearRemote();
  grid.setLocal('self/screen', null);
  for (const key of ['connection', 'media', 'devices', 'unreachable', 'grants']) status.clear(key);
  showControls();
}

$('rejoin-button').addEventListener('click', () => enterRoom($('room-name').textContent, nameInput.value.trim() || 'Guest'));

// ---- Start -------------------------------------------------------------------------------

showScreen('join-screen');
showJoinPreview();
showControls();
controls.showLayout(grid.layout);
media.start().then(() => {
  showJoinPreview();
  showControls();
});
