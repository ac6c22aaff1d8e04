// Being in a room: the signaling socket, the media connection and the roster, kept going
// across dropped sockets and failed connections until the person leaves.
//
// One membership is one socket, one `join`, one RTCPeerConnection. When the socket drops, or
// the server ends the session (close code 4001 when our media connection failed on its side),
// everything of that membership is let go and the call joins again with the same name and the
// same local tracks, after a short, growing pause. When the media connection is interrupted
// while the socket is fine, the call first restarts ICE on the same connection; if that does
// not bring it back in time, it rejoins. When the server shuts down (a `shutdown` message,
// then close code 1001) the call says so and keeps trying to join, as a server that shuts down
// is usually restarting.
//
// In a cluster the server that answers `join` may send a `redirect` instead: the room lives on
// another node. The call then opens the named ws:/wss: URL at once and sends the same `join`
// there, following at most three redirects in a row before it counts the attempt as failed.
// Every rejoin after a failure starts again at the entry URL the call was given (the page's own
// server, or the load balancer in front of the nodes), never at a node a redirect named, which
// may be the one that just died; a redirect target that cannot be reached is retried through
// the entry within a second. A node that cannot place the room (`cluster_unavailable`, then
// close code 1013) is tried again with the usual pauses; a room that moved to another node
// (`room_moved`, close code 4007) is joined again through the entry, which knows where it is.
//
// Events:
//   `state`   {state, attempt?, delay?}  connecting | joined | reconnecting | left
//   `chat`    {participant, name, text, at, self}
//   `notice`  {text, level}  something the person should read
//   `media`   {state}  the media connection's state
//   `unreachable` {message}  the media server cannot be reached (TURN refused, no relay)
//   `grants`  {publish, subscribe, chat}  what this membership may do, when it is not everything
//   `ended`   {code, message}  the server ended the call for good (another session took over)
//   `speakers` {active, speaking}  who speaks (`call.speakers` keeps the latest)
// The roster (`call.roster`) reports who is there and what they publish, and which videos the
// server paused for want of bandwidth. `sendView` tells the server how each received video is
// shown (adaptive-stream.js); `layers` messages switch our camera's simulcast layers
// (simulcast.js).

import { MediaConnection } from './connection.js';
import { Roster } from './roster.js';
import { SignalingSocket } from './signaling.js';
import { cameraEncodings, LayerControl, SCREEN_ENCODINGS, sendEncodings } from './simulcast.js';

/** Pauses before rejoining: quick at first, then backing off. */
const REJOIN_DELAYS_MS = [250, 1000, 2000, 4000, 8000];
/** How long an interrupted media connection may stay so before ICE is restarted. */
const DISCONNECTED_GRACE_MS = 3000;
/** How long a restarted or failed media connection has to recover before the call rejoins. */
const RECOVERY_TIMEOUT_MS = 10000;
/** A membership this old counts as healthy: the next rejoin starts with a short pause again. */
const HEALTHY_AFTER_MS = 10000;
/** Close code for a socket we close to start over. */
const CLOSE_TO_REJOIN = 4000;

/** What the person reads while the server is shutting down or restarting. */
const SERVER_SHUTTING_DOWN = 'The server is shutting down';
/** Close code for a server that is going away. */
const CLOSE_GOING_AWAY = 1001;

/** Redirects followed in a row without joining before the attempt counts as failed. */
export const MAX_REDIRECTS = 3;
/** The longest pause before trying the entry again when a redirect's target cannot be reached. */
const REDIRECT_TARGET_DOWN_DELAY_MS = 1000;
/** What the person reads while the cluster cannot place the room. */
const CLUSTER_UNAVAILABLE = 'The server cannot place this room right now';
/** Close code for "try again later", after `cluster_unavailable`. */
const CLOSE_TRY_AGAIN_LATER = 1013;
/** Close code for a room that now lives on another node, after `room_moved`. */
const CLOSE_ROOM_MOVED = 4007;

/** Join refusals that rejoining cannot fix, and what to tell the person. */
const FATAL_JOIN_ERRORS = new Map([
  ['invalid_room', null],
  ['invalid_name', null],
  ['token_missing', 'This room needs an access link: ask whoever invited you for one.'],
  ['token_invalid', 'This access link is not valid for this server: ask for a new one.'],
  ['token_expired', 'This access link has expired: ask for a new one.'],
  ['token_wrong_room', 'This access link is for another room.'],
  ['invite_used_up', 'This invite link has been used as many times as it allows: ask for a new one.'],
  ['room_full', 'This room is full.'],
  ['too_many_rooms', 'The server cannot open another room right now. Try again later.'],
]);

/** Nobody has spoken yet. */
const NO_SPEAKERS = Object.freeze({ active: null, speaking: Object.freeze([]) });

/** What a membership may do when the server does not say (an older server). */
const ALL_GRANTS = Object.freeze({ publish: true, subscribe: true, chat: true });

/**
 * Where a `redirect` sends the call: its URL when it is a ws: or wss: URL and fewer than
 * MAX_REDIRECTS were followed in a row (`followed`), otherwise null (the attempt failed).
 */
export function redirectTarget(url, followed) {
  if (typeof url !== 'string' || followed >= MAX_REDIRECTS) return null;
  let parsed;
  try {
    parsed = new URL(url);
  } catch {
    return null;
  }
  return parsed.protocol === 'ws:' || parsed.protocol === 'wss:' ? parsed.href : null;
}

export class JoinRefused extends Error {
  constructor(code, message, serverMessage = message) {
    super(message);
    this.code = code;
    this.serverMessage = serverMessage;
  }
}

export class Call extends EventTarget {
  /** Who is there and what they publish. */
  roster = new Roster();
  /** Our participant id in the current membership. */
  self = null;
  state = 'connecting';
  /** What the current membership may do. */
  grants = ALL_GRANTS;
  /** The dominant speaker (`active`, kept while the room is silent) and who speaks now. */
  speakers = NO_SPEAKERS;

  #url;
  #room;
  #name;
  #token;
  #relay;
  #media;
  #socket = null;
  #connection = null;
  /** kind ('audio' | 'video' | 'screen') → transceiver publishing it */
  #published = new Map();
  #screen = null;
  #layers = new LayerControl((track) => this.#connection?.senderOf(track) ?? null);
  #attempt = 0;
  #rejoinTimer = null;
  #recoveryTimer = null;
  #healthyTimer = null;
  #work = Promise.resolve();
  #joinWaiter = null;
  /** Set when the server said it is shutting down; cleared by the next successful join. */
  #serverGone = false;
  /** Redirects followed since the last join or failure. */
  #redirects = 0;
  /** Set when the current socket's node said it cannot place the room. */
  #unplaceable = false;

  /**
   * @param {object} options
   * @param {string} options.url the signaling URL to enter by, and to come back to after a failure
   * @param {string} options.room
   * @param {string} options.name
   * @param {import('./local-media.js').LocalMedia} options.media our camera and microphone
   * @param {string | null} [options.token] the access token, for a server that wants one
   * @param {boolean} [options.relay] reach the media server through TURN relays only
   */
  constructor({ url, room, name, media, token = null, relay = false }) {
    super();
    this.#url = url;
    this.#room = room;
    this.#name = name;
    this.#media = media;
    this.#token = token;
    this.#relay = relay;
  }

  get room() {
    return this.#room;
  }

  get name() {
    return this.#name;
  }

  /**
   * The access token this call joins with: the one it was given, or, after joining by an invite
   * link, the token of its own the server handed out, so that rejoining is the same person and
   * uses the invite no more.
   */
  get token() {
    return this.#token;
  }

  /** The current media connection, for statistics (null between memberships). */
  get connection() {
    return this.#connection;
  }

  /**
   * Joins. Resolves once joined; rejects with JoinRefused when the server refuses the room or
   * the name, or with an Error when the server cannot be reached at all.
   */
  join() {
    return new Promise((resolve, reject) => {
      this.#joinWaiter = { resolve, reject };
      this.#connect();
    });
  }

  /** Leaves the room for good. */
  leave() {
    this.#setState('left');
    clearTimeout(this.#rejoinTimer);
    clearTimeout(this.#recoveryTimer);
    if (this.#socket) {
      this.#socket.send({ type: 'leave' });
      this.#socket.close(1000, 'left');
    }
    this.#endMembership();
  }

  /** Sends a chat message; it comes back from the server like everybody else's. */
  sendChat(text) {
    return this.#socket?.send({ type: 'chat', text }) ?? false;
  }

  setMicMuted(muted) {
    this.#media.setMicMuted(muted);
    this.#announceMute('audio', muted);
  }

  setCameraOff(off) {
    this.#media.setCameraOff(off);
    this.#announceMute('video', off);
  }

  /** Switches camera or microphone without renegotiating: the sender's track is replaced. */
  async switchDevice(kind, deviceId) {
    const { track, done } = await this.#media.switchDevice(kind, deviceId);
    const transceiver = this.#published.get(kind);
    if (transceiver) {
      await transceiver.sender.replaceTrack(track);
      // The layers the server wants stay wanted whatever device feeds them.
      const published = this.#connection?.publishedTrackId(transceiver);
      if (published) await this.#layers.apply(published);
    } else if (this.#connection && this.grants.publish) {
      // Nothing of this kind was published (it was denied or missing): publishing it now needs
      // a renegotiation, which the connection starts by itself.
      this.#published.set(kind, this.#connection.publish(track, this.#media.stream, { encodings: kind === 'video' ? cameraEncodings(track.getSettings()) : null }));
    }
    done();
  }

  /** Whether a screen share is on. */
  get sharingScreen() {
    return this.#screen !== null;
  }

  /** Starts sharing a captured screen ({track, stream} from LocalMedia.captureScreen). */
  startScreenShare(screen) {
    this.stopScreenShare();
    this.#screen = screen;
    // The browser's own "Stop sharing" ends the track.
    screen.track.addEventListener('ended', () => {
      if (this.#screen === screen) this.stopScreenShare();
    }, { once: true });
    if (this.#connection && this.grants.publish) {
      this.#published.set('screen', this.#connection.publish(screen.track, screen.stream, { encodings: sendEncodings(SCREEN_ENCODINGS), slides: true }));
    }
    this.#notifyScreen();
  }

  stopScreenShare() {
    const screen = this.#screen;
    if (!screen) return;
    this.#screen = null;
    const transceiver = this.#published.get('screen');
    this.#published.delete('screen');
    if (transceiver && this.#connection) this.#connection.unpublish(transceiver);
    screen.track.stop();
    this.#notifyScreen();
  }

  /**
   * Tells the server how the received videos are shown: [{participant, track, width, height,
   * visible}] (docs/signaling.md, `view`). Returns whether the socket took it.
   */
  sendView(tracks) {
    if (this.state !== 'joined' || tracks.length === 0) return false;
    return this.#socket?.send({ type: 'view', tracks }) ?? false;
  }

  /** The captured screen, while sharing. */
  get screen() {
    return this.#screen;
  }

  #notifyScreen() {
    this.dispatchEvent(new CustomEvent('screen', { detail: { sharing: this.#screen !== null } }));
  }

  /**
   * Opens a socket and sends `join`: to the entry URL, or to the node a redirect named
   * (`redirected`), which is part of the same attempt.
   */
  async #connect(url = this.#url, redirected = false) {
    if (!redirected) {
      this.#redirects = 0;
      this.#setState(this.#attempt === 0 ? 'connecting' : 'reconnecting', { attempt: this.#attempt });
    }
    let socket;
    try {
      socket = await SignalingSocket.open(url);
    } catch (error) {
      if (this.state === 'left') return;
      // While a server restarts it cannot be reached; the reason is still that it shut down.
      const why = this.#serverGone ? SERVER_SHUTTING_DOWN : error.message;
      // A node a redirect named and that cannot be reached has most likely just died: the
      // entry will place the room elsewhere once its lease lapses, so ask it again soon.
      this.#scheduleRejoin(why, redirected ? REDIRECT_TARGET_DOWN_DELAY_MS : Infinity);
      return;
    }
    if (this.state === 'left') {
      socket.close();
      return;
    }
    this.#socket = socket;
    this.#unplaceable = false;
    socket.addEventListener('message', ({ detail }) => {
      // A redirect is handled at once: the server closes the socket right after it.
      if (detail.type === 'redirect') {
        this.#onRedirect(socket, detail);
        return;
      }
      // One message at a time, in order: an offer must not overtake the announcements before it.
      this.#work = this.#work.then(() => this.#onMessage(socket, detail)).catch((error) => {
        console.error('handling a server message failed', error);
      });
    });
    socket.addEventListener('close', ({ detail }) => this.#onSocketClosed(socket, detail));
    const join = { type: 'join', room: this.#room, name: this.#name };
    if (this.#token) join.token = this.#token;
    socket.send(join);
  }

  async #onMessage(socket, message) {
    if (socket !== this.#socket) return;
    switch (message.type) {
      case 'joined': return this.#onJoined(message);
      case 'offer':
      case 'answer':
      case 'candidate':
        return this.#connection?.handle(message);
      case 'participant_joined':
        this.roster.add(message.participant);
        this.#notice(`${message.participant.name} joined`, 'info');
        return;
      case 'participant_left': {
        const name = this.roster.participant(message.participant)?.name;
        this.roster.remove(message.participant);
        if (name) this.#notice(`${name} left`, 'info');
        return;
      }
      case 'track_published': return this.roster.published(message);
      case 'track_unpublished': return this.roster.unpublished(message);
      case 'mute': return this.roster.muted(message);
      case 'video_paused': return this.roster.videoPaused(message);
      case 'speakers': return this.#setSpeakers(message);
      case 'layers': return this.#layers.want(message.track, message.active);
      case 'chat':
        this.dispatchEvent(new CustomEvent('chat', {
          detail: {
            participant: message.participant,
            name: message.participant === this.self ? this.#name : this.roster.nameOf(message.participant),
            text: message.text,
            at: message.at,
            self: message.participant === this.self,
          },
        }));
        return;
      case 'shutdown':
        this.#serverGone = true;
        this.#notice(`${SERVER_SHUTTING_DOWN}.`, 'warning');
        return;
      case 'error': return this.#onError(message);
      default:
        // Newer servers may say more; this client ignores what it does not know.
        return;
    }
  }

  /** The room lives on another node: go there with the same `join`, without a pause. */
  #onRedirect(socket, { url }) {
    if (socket !== this.#socket || this.self || this.state === 'left') return;
    const target = redirectTarget(url, this.#redirects);
    this.#socket = null;
    socket.close(1000, 'redirected');
    this.#endMembership();
    if (target === null) {
      // A failed attempt: back to the entry after the usual pause.
      console.warn(`not following a redirect to ${url} after ${this.#redirects} in a row`);
      this.#scheduleRejoin(this.#redirects >= MAX_REDIRECTS
        ? 'The servers kept sending this page elsewhere'
        : 'The server sent this page to an address it cannot use');
      return;
    }
    this.#redirects += 1;
    this.#connect(target, true);
  }

  async #onJoined(message) {
    this.self = message.participant;
    this.#serverGone = false;
    this.#redirects = 0;
    // The server has the last word on the name (an access token may set it).
    if (typeof message.name === 'string') this.#name = message.name;
    // Joined by an invite link: rejoin with the token the server made for us.
    if (typeof message.token === 'string') this.#token = message.token;
    this.grants = { ...ALL_GRANTS, ...message.grants };
    if (!this.grants.publish || !this.grants.subscribe || !this.grants.chat) {
      this.dispatchEvent(new CustomEvent('grants', { detail: this.grants }));
    }
    // Back to quick rejoins once this membership proves healthy: its media connects, or it
    // lasts (a page that only watches an empty room has no media to connect).
    clearTimeout(this.#healthyTimer);
    this.#healthyTimer = setTimeout(() => { this.#attempt = 0; }, HEALTHY_AFTER_MS);
    this.roster.reset(message.participants);
    const connection = new MediaConnection({
      iceServers: message.ice_servers ?? [],
      relay: this.#relay,
      send: (outgoing) => this.#socket?.send(outgoing),
    });
    this.#connection = connection;
    connection.addEventListener('track', ({ detail }) => this.roster.received(detail.mid, detail.track));
    connection.addEventListener('statechange', ({ detail }) => this.#onMediaState(connection, detail.state));
    connection.addEventListener('failure', ({ detail }) => this.#notice(`Media negotiation problem: ${detail.message}`, 'warning'));
    connection.addEventListener('unreachable', ({ detail }) => {
      if (connection === this.#connection) this.dispatchEvent(new CustomEvent('unreachable', { detail }));
    });

    this.#published.clear();
    if (this.grants.publish) {
      if (this.#media.microphone) this.#published.set('audio', connection.publish(this.#media.microphone, this.#media.stream));
      if (this.#media.camera) {
        const { camera } = this.#media;
        this.#published.set('video', connection.publish(camera, this.#media.stream, { encodings: cameraEncodings(camera.getSettings()) }));
      }
      if (this.#screen) {
        this.#published.set('screen', connection.publish(this.#screen.track, this.#screen.stream, { encodings: sendEncodings(SCREEN_ENCODINGS), slides: true }));
      }
    }
    await connection.start();
    // The server learns mute states from messages, not from the media: say what is off now.
    if (this.#media.micMuted) this.#announceMute('audio', true);
    if (this.#media.cameraOff) this.#announceMute('video', true);

    this.#setState('joined');
    this.#joinWaiter?.resolve();
    this.#joinWaiter = null;
  }

  #onError({ code, message }) {
    if (!this.self && FATAL_JOIN_ERRORS.has(code)) {
      const refusal = new JoinRefused(code, FATAL_JOIN_ERRORS.get(code) ?? message, message);
      this.#setState('left');
      this.#socket?.close();
      if (this.#joinWaiter) {
        this.#joinWaiter.reject(refusal);
        this.#joinWaiter = null;
      } else {
        // A rejoin was refused (the access link expired meanwhile, the room filled up).
        this.#endCall(code, refusal.message);
      }
      return;
    }
    switch (code) {
      case 'shutting_down':
        this.#serverGone = true;
        return;
      case 'cluster_unavailable':
        // The server closes the socket (1013) right after; the call tries again with a pause.
        this.#unplaceable = true;
        return;
      case 'room_moved':
        // The server closes the socket (4007) right after; the call joins again where the room is.
        return;
      case 'replaced':
        this.#endCall(code, 'You joined this room from another page or device, so this page left it.');
        return;
      case 'removed':
        this.#endCall(code, 'An operator removed you from this room.');
        return;
      case 'invalid_chat':
        this.#notice('That message could not be sent: it is empty or too long.', 'warning');
        return;
      case 'chat_too_long':
        this.#notice('That message could not be sent: it is too long for this server.', 'warning');
        return;
      case 'chat_not_allowed':
        this.#notice('Your access link does not allow sending chat messages.', 'warning');
        return;
      case 'publish_not_allowed':
        this.#notice('Your access link does not allow publishing: the others cannot see or hear you.', 'warning');
        return;
      case 'rate_limited':
        this.#notice('Slow down: the server is dropping messages from this page.', 'warning');
        break;
      default:
        break;
    }
    console.warn(`server refused a message: ${code}: ${message}`);
  }

  /** Ends the call for good, for a reason the person should read. */
  #endCall(code, message) {
    this.#setState('left');
    clearTimeout(this.#rejoinTimer);
    this.#socket?.close();
    this.#endMembership();
    this.dispatchEvent(new CustomEvent('ended', { detail: { code, message } }));
  }

  #onSocketClosed(socket, { code, byUs }) {
    if (socket !== this.#socket) return;
    this.#socket = null;
    this.#endMembership();
    if (this.state === 'left') return;
    if (code === CLOSE_GOING_AWAY && !byUs) this.#serverGone = true;
    this.#scheduleRejoin(this.#whyClosed(code, byUs));
  }

  /** What the person reads about a socket that closed with `code`. */
  #whyClosed(code, byUs) {
    if (this.#serverGone) return SERVER_SHUTTING_DOWN;
    if (this.#unplaceable || code === CLOSE_TRY_AGAIN_LATER) return CLUSTER_UNAVAILABLE;
    switch (code) {
      case 4001: return 'The media connection failed';
      case 4002: return 'The server stopped waiting for this page';
      case CLOSE_ROOM_MOVED: return 'This room moved to another server';
      case 1008: return 'This page sent too many messages';
      default: return byUs ? 'Starting over' : 'The connection to the server was lost';
    }
  }

  /** Rejoins through the entry URL after the next pause of the backoff, or `longest` if shorter. */
  #scheduleRejoin(why, longest = Infinity) {
    const delay = Math.min(REJOIN_DELAYS_MS[Math.min(this.#attempt, REJOIN_DELAYS_MS.length - 1)], longest);
    this.#attempt += 1;
    this.#setState('reconnecting', { attempt: this.#attempt, delay, why });
    clearTimeout(this.#rejoinTimer);
    this.#rejoinTimer = setTimeout(() => this.#connect(), delay);
  }

  /** Lets go of everything that belonged to the current membership. */
  #endMembership() {
    clearTimeout(this.#healthyTimer);
    clearTimeout(this.#recoveryTimer);
    this.#recoveryTimer = null;
    this.#connection?.close();
    this.#connection = null;
    this.#published.clear();
    this.#layers.clear();
    this.self = null;
    this.roster.clear();
    this.#setSpeakers(NO_SPEAKERS);
    this.#work = Promise.resolve();
  }

  #onMediaState(connection, state) {
    if (connection !== this.#connection) return;
    this.dispatchEvent(new CustomEvent('media', { detail: { state } }));
    clearTimeout(this.#recoveryTimer);
    this.#recoveryTimer = null;
    if (state === 'connected') {
      this.#attempt = 0;
    } else if (state === 'disconnected') {
      // Often a passing glitch: give it a moment, then restart ICE.
      this.#recoveryTimer = setTimeout(() => this.#recover(connection), DISCONNECTED_GRACE_MS);
    } else if (state === 'failed') {
      this.#recover(connection);
    }
  }

  /** Restarts ICE, and rejoins if the connection is still not back after a while. */
  #recover(connection) {
    if (connection !== this.#connection) return;
    connection.restartIce();
    this.#recoveryTimer = setTimeout(() => {
      if (connection === this.#connection && connection.state !== 'connected') {
        this.#socket?.close(CLOSE_TO_REJOIN, 'media connection lost');
      }
    }, RECOVERY_TIMEOUT_MS);
  }

  #setSpeakers({ active, speaking }) {
    const next = {
      active: typeof active === 'string' ? active : null,
      speaking: Array.isArray(speaking) ? speaking.filter((id) => typeof id === 'string') : [],
    };
    const same = next.active === this.speakers.active && next.speaking.length === this.speakers.speaking.length
      && next.speaking.every((id) => this.speakers.speaking.includes(id));
    if (same) return;
    this.speakers = next;
    this.dispatchEvent(new CustomEvent('speakers', { detail: next }));
  }

  #announceMute(kind, muted) {
    const transceiver = this.#published.get(kind);
    if (!transceiver || !this.#connection || !this.#socket) return;
    const track = this.#connection.publishedTrackId(transceiver);
    if (track) this.#socket.send({ type: 'mute', track, muted });
  }

  #setState(state, detail = {}) {
    this.state = state;
    this.dispatchEvent(new CustomEvent('state', { detail: { state, ...detail } }));
  }

  #notice(text, level) {
    this.dispatchEvent(new CustomEvent('notice', { detail: { text, level } }));
  }
}
