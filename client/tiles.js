// The tiles on screen: one per person, one per extra stream (a screen share), our own included,
// laid out as a grid or as the speaker view (layout.js), a page at a time.
//
// The grid makes 16:9 tiles as large as the space allows and pages what does not fit; the
// speaker view shows a screen share, else the active speaker, large above a paged strip of the
// others. Layouts are redone as tiles come and go and the space changes. Tiles on another page
// are hidden, and the view reporter (adaptive-stream.js) tells the server so: they receive no
// video, but their sound plays on.
//
// Browsers may refuse to play sound before the person has interacted with the page. A tile
// whose playback is refused plays muted instead, and the grid fires `autoplay-blocked` so the
// page can offer a button; `enableSound()` (called from that click) unmutes every tile.

import { chooseStage, gridLayout, speakerLayout } from './layout.js';
import { Tile } from './tile.js';

export class TileGrid extends EventTarget {
  #container;
  #pager;
  #views;
  /** @type {Map<string, Tile>} */
  #tiles = new Map();
  #soundEnabled = true;
  /** 'grid' or 'speaker' */
  #mode = 'grid';
  #page = 0;
  #pages = 1;
  /** The key of the tile on the stage of the speaker view. */
  #stage = null;
  #speakers = { active: null, speaking: [] };
  #self = null;

  /**
   * @param {HTMLElement} container where the tiles go
   * @param {object} options
   * @param {{element: HTMLElement, previous: HTMLButtonElement, next: HTMLButtonElement,
   *          label: HTMLElement}} options.pager the page controls
   * @param {import('./adaptive-stream.js').ViewReporter} options.views tells the server what is shown
   */
  constructor(container, { pager, views }) {
    super();
    this.#container = container;
    this.#pager = pager;
    this.#views = views;
    pager.previous.addEventListener('click', () => this.showPage(this.#page - 1));
    pager.next.addEventListener('click', () => this.showPage(this.#page + 1));
    new ResizeObserver(() => this.#layout()).observe(container);
  }

  /** `grid` or `speaker`. */
  get layout() {
    return this.#mode;
  }

  /** The page shown (from 0) and how many there are. */
  get page() {
    return this.#page;
  }

  get pages() {
    return this.#pages;
  }

  /** The key of the tile on the stage, in the speaker view; null in the grid. */
  get stage() {
    return this.#mode === 'speaker' ? this.#stage : null;
  }

  /** The video a tile shows, as the server names it ({participant, track}), or null. */
  sourceOf(key) {
    return this.#tiles.get(key)?.videoSource ?? null;
  }

  /** Switches between the grid and the speaker view. */
  setLayout(mode) {
    if (mode !== 'grid' && mode !== 'speaker') throw new Error(`no layout ${mode}`);
    if (mode === this.#mode) return;
    this.#mode = mode;
    this.#page = 0;
    this.#layout();
  }

  /** Turns to page `page` (from 0) of the grid, or of the speaker view's strip. */
  showPage(page) {
    this.#page = page;
    this.#layout();
  }

  /** Shows who speaks now (a ring) and follows the active speaker in the speaker view. */
  setSpeakers({ active, speaking }, self) {
    this.#speakers = { active, speaking };
    this.#self = self;
    for (const tile of this.#tiles.values()) this.#showSpeaking(tile);
    if (this.#mode === 'speaker') this.#layout();
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
      if (tile.participant === id && !keys.has(key)) this.#remove(key);
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
      const videoSource = video ? { participant: id, track: video.track } : null;
      tile.update({
        label: isPerson ? participant.name : `${participant.name} (screen)`,
        name: participant.name,
        tracks,
        showVideo: video !== null && !video.muted,
        micMuted: isPerson && (audio === null || audio.muted),
        cameraOff: isPerson && (video === null || video.muted),
        lowBandwidth: video !== null && !video.muted && video.paused,
        videoSource,
        mids: { videoMid: video?.mid, audioMid: audio?.mid },
      });
      if (videoSource) this.#views.watch(tile.video, videoSource);
      else this.#views.unwatch(tile.video);
      this.#showSpeaking(tile);
      this.#play(tile);
    }
    this.#layout();
  }

  /** Removes every remote tile (the connection is gone). */
  clearRemote() {
    for (const [key, tile] of this.#tiles) {
      if (!tile.local) this.#remove(key);
    }
  }

  /** Unmutes every remote tile; call it from a click. */
  enableSound() {
    this.#soundEnabled = true;
    for (const tile of this.#tiles.values()) {
      if (!tile.local) {
        tile.video.muted = false;
        this.#play(tile);
      }
    }
  }

  #showSpeaking(tile) {
    const participant = tile.local ? this.#self : tile.participant;
    tile.setSpeaking(tile.kind === 'person' && participant !== null && this.#speakers.speaking.includes(participant));
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
    this.#views.unwatch(tile.video);
    tile.video.srcObject = null;
    tile.element.remove();
    this.#tiles.delete(key);
    this.#layout();
  }

  #play(tile) {
    const video = tile.video;
    if (!video.srcObject || !video.paused) return;
    if (!tile.local) video.muted = !this.#soundEnabled;
    video.play().catch((error) => {
      if (error.name !== 'NotAllowedError' || video.muted) return;
      // Sound needs a click first: play muted now, and let the page ask for the click.
      this.#soundEnabled = false;
      video.muted = true;
      video.play().catch(() => {});
      this.dispatchEvent(new Event('autoplay-blocked'));
    });
  }

  /** The tiles in the order they are shown. */
  #ordered() {
    return [...this.#container.children]
      .map((element) => this.#tiles.get(element.dataset.key))
      .filter(Boolean);
  }

  #layout() {
    const style = getComputedStyle(this.#container);
    const width = this.#container.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
    const height = this.#container.clientHeight - parseFloat(style.paddingTop) - parseFloat(style.paddingBottom);
    const tiles = this.#ordered();
    const set = (name, value) => this.#container.style.setProperty(name, value);
    const show = (tile, shown, onStage) => {
      tile.element.hidden = !shown;
      tile.element.classList.toggle('stage', onStage);
    };
    if (this.#mode === 'speaker') {
      this.#stage = chooseStage(tiles.map((tile) => ({
        key: tile.key, kind: tile.kind, participant: tile.participant, local: tile.local, hasVideo: tile.hasVideo,
      })), { active: this.#speakers.active, previous: this.#stage });
      const strip = tiles.filter((tile) => tile.key !== this.#stage);
      const layout = speakerLayout(strip.length, width, height, this.#page);
      this.#page = layout.page;
      this.#pages = layout.pages;
      for (const tile of tiles) if (tile.key === this.#stage) show(tile, true, true);
      strip.forEach((tile, index) => show(tile, index >= layout.first && index < layout.first + layout.shown, false));
      set('--stage-width', `${layout.stageWidth}px`);
      set('--stage-height', `${layout.stageHeight}px`);
      set('--strip-height', `${layout.stripHeight}px`);
      set('--tile-width', `${layout.tileWidth}px`);
    } else {
      const layout = gridLayout(tiles.length, width, height, this.#page);
      this.#page = layout.page;
      this.#pages = layout.pages;
      tiles.forEach((tile, index) => show(tile, index >= layout.first && index < layout.first + layout.shown, false));
      set('--columns', String(layout.columns));
      set('--tile-width', `${layout.tileWidth}px`);
    }
    this.#container.dataset.layout = this.#mode;
    this.#showPager();
    this.#views.changed();
  }

  #showPager() {
    const { element, previous, next, label } = this.#pager;
    element.hidden = this.#pages <= 1;
    label.textContent = `${this.#page + 1} / ${this.#pages}`;
    previous.disabled = this.#page === 0;
    next.disabled = this.#page >= this.#pages - 1;
  }
}
