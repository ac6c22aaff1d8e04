// The grid of tiles: one per person, one per extra stream (a screen share), our own included.
//
// Each tile shows the video when there is one and the person's initials when there is not (or
// the camera is off), the name, and a muted-microphone and camera-off indicator. The grid picks
// the number of columns that makes 16:9 tiles as large as the space allows, and redoes it as
// tiles come and go and the window changes size.
//
// Browsers may refuse to play sound before the person has interacted with the page. A tile
// whose playback is refused plays muted instead, and the grid fires `autoplay-blocked` so the
// page can offer a button; `enableSound()` (called from that click) unmutes every tile.

const TILE_ASPECT = 16 / 9;
const GAP_PX = 8;

/** Up to two initials of a display name. */
export function initials(name) {
  const words = name.trim().split(/\s+/).filter(Boolean);
  const letters = words.length > 1 ? [words[0], words[words.length - 1]] : words;
  return letters.map((word) => [...word][0].toUpperCase()).join('') || '?';
}

/** The best column count for `count` tiles of `TILE_ASPECT` in a `width` × `height` box. */
export function bestLayout(count, width, height) {
  let best = { columns: 1, tileWidth: 0 };
  for (let columns = 1; columns <= Math.max(count, 1); columns += 1) {
    const rows = Math.ceil(count / columns);
    const byWidth = (width - GAP_PX * (columns - 1)) / columns;
    const byHeight = ((height - GAP_PX * (rows - 1)) / rows) * TILE_ASPECT;
    const tileWidth = Math.floor(Math.max(0, Math.min(byWidth, byHeight)));
    if (tileWidth > best.tileWidth) best = { columns, tileWidth };
  }
  return best;
}

class Tile {
  constructor({ key, local, kind }) {
    this.key = key;
    this.element = document.createElement('figure');
    this.element.className = 'tile';
    this.element.dataset.key = key;
    this.element.dataset.kind = kind;
    if (local) this.element.dataset.local = '';
    else this.element.dataset.remote = '';

    this.video = document.createElement('video');
    this.video.playsInline = true;
    this.video.autoplay = true;
    this.video.muted = local;
    this.avatar = document.createElement('div');
    this.avatar.className = 'avatar';
    this.avatarText = document.createElement('span');
    this.avatar.append(this.avatarText);

    const caption = document.createElement('figcaption');
    this.micOff = indicator('mic-off', 'Microphone muted');
    this.cameraOff = indicator('camera-off', 'Camera off');
    this.name = document.createElement('span');
    this.name.className = 'name';
    caption.append(this.micOff, this.cameraOff, this.name);
    this.element.append(this.video, this.avatar, caption);
    this.trackIds = '';
  }

  /**
   * @param {object} view
   * @param {string} view.label the caption
   * @param {string} view.name whose initials to show without video
   * @param {MediaStreamTrack[]} view.tracks what to play
   * @param {boolean} view.showVideo whether the video is worth showing (present and not off)
   * @param {boolean} view.micMuted
   * @param {boolean} view.cameraOff
   * @param {boolean} view.mirrored our own camera, shown as in a mirror
   */
  update(view) {
    this.name.textContent = view.label;
    this.avatarText.textContent = initials(view.name);
    this.micOff.hidden = !view.micMuted;
    this.cameraOff.hidden = !view.cameraOff;
    this.element.toggleAttribute('data-mic-muted', view.micMuted);
    this.element.toggleAttribute('data-camera-off', view.cameraOff);
    this.element.classList.toggle('no-video', !view.showVideo);
    this.video.classList.toggle('mirrored', Boolean(view.mirrored));
    for (const [attribute, mid] of Object.entries(view.mids ?? {})) {
      if (mid) this.element.dataset[attribute] = mid;
      else delete this.element.dataset[attribute];
    }
    const trackIds = view.tracks.map((track) => track.id).join(' ');
    if (trackIds !== this.trackIds) {
      this.trackIds = trackIds;
      this.video.srcObject = view.tracks.length > 0 ? new MediaStream(view.tracks) : null;
    }
  }
}

function indicator(name, title) {
  const element = document.createElement('span');
  element.className = `indicator ${name}`;
  element.title = title;
  element.setAttribute('role', 'img');
  element.setAttribute('aria-label', title);
  const icon = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  const use = document.createElementNS('http://www.w3.org/2000/svg', 'use');
  use.setAttribute('href', `#icon-${name}`);
  icon.append(use);
  element.append(icon);
  element.hidden = true;
  return element;
}

export class TileGrid extends EventTarget {
  #container;
  /** @type {Map<string, Tile>} */
  #tiles = new Map();
  #soundEnabled = true;

  constructor(container) {
    super();
    this.#container = container;
    new ResizeObserver(() => this.#layout()).observe(container);
  }

  /** Shows, updates or (with `view` null) removes one of our own tiles. */
  setLocal(key, view) {
    if (!view) {
      this.#remove(key);
      return;
    }
    const tile = this.#tile(key, { local: true, kind: view.kind });
    tile.update(view);
    this.#play(tile);
  }

  /** Brings a participant's tiles in line with the roster. */
  showParticipant(roster, id) {
    const wanted = roster.tilesOf(id);
    const keys = new Set(wanted.map((tile) => tile.key));
    for (const [key, tile] of this.#tiles) {
      if (tile.element.dataset.participant === id && !keys.has(key)) this.#remove(key);
    }
    for (const { key, kind, participant, stream } of wanted) {
      const tile = this.#tile(key, { local: false, kind });
      tile.element.dataset.participant = id;
      const audio = stream?.publication('audio') ?? null;
      const video = stream?.publication('video') ?? null;
      const tracks = [video, audio]
        .filter(Boolean)
        .map((publication) => roster.trackFor(publication.mid))
        .filter(Boolean);
      const isPerson = kind === 'person';
      tile.update({
        label: isPerson ? participant.name : `${participant.name} (screen)`,
        name: participant.name,
        tracks,
        showVideo: video !== null && !video.muted,
        micMuted: isPerson && (audio === null || audio.muted),
        cameraOff: isPerson && (video === null || video.muted),
        mids: { videoMid: video?.mid, audioMid: audio?.mid },
      });
      this.#play(tile);
    }
    this.#layout();
  }

  /** Removes every remote tile (the connection is gone). */
  clearRemote() {
    for (const [key, tile] of this.#tiles) {
      if ('remote' in tile.element.dataset) this.#remove(key);
    }
  }

  /** Unmutes every remote tile; call it from a click. */
  enableSound() {
    this.#soundEnabled = true;
    for (const tile of this.#tiles.values()) {
      if ('remote' in tile.element.dataset) {
        tile.video.muted = false;
        this.#play(tile);
      }
    }
  }

  #tile(key, { local, kind }) {
    let tile = this.#tiles.get(key);
    if (!tile) {
      tile = new Tile({ key, local, kind });
      this.#tiles.set(key, tile);
      // Our own tiles first, then people in the order they arrived.
      if (local) this.#container.prepend(tile.element);
      else this.#container.append(tile.element);
      this.#layout();
    }
    return tile;
  }

  #remove(key) {
    const tile = this.#tiles.get(key);
    if (!tile) return;
    tile.video.srcObject = null;
    tile.element.remove();
    this.#tiles.delete(key);
    this.#layout();
  }

  #play(tile) {
    const video = tile.video;
    if (!video.srcObject || !video.paused) return;
    if ('remote' in tile.element.dataset) video.muted = !this.#soundEnabled;
    video.play().catch((error) => {
      if (error.name !== 'NotAllowedError' || video.muted) return;
      // Sound needs a click first: play muted now, and let the page ask for the click.
      this.#soundEnabled = false;
      video.muted = true;
      video.play().catch(() => {});
      this.dispatchEvent(new Event('autoplay-blocked'));
    });
  }

  #layout() {
    const style = getComputedStyle(this.#container);
    const width = this.#container.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
    const height = this.#container.clientHeight - parseFloat(style.paddingTop) - parseFloat(style.paddingBottom);
    const { columns, tileWidth } = bestLayout(this.#tiles.size, width, height);
    this.#container.style.setProperty('--columns', String(columns));
    this.#container.style.setProperty('--tile-width', `${tileWidth}px`);
  }
}
