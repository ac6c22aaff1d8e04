// Adaptive stream: tells the server, per received video, how large its tile is shown (in
// device pixels) and whether it is on screen at all, so the server sends no larger a layer
// than the tile needs and no video for a tile nobody sees (docs/signaling.md, `view`).
//
// Sizes come from a ResizeObserver, being on screen from an IntersectionObserver (a tile on
// another page is `display: none`, which never intersects) and from the page's own visibility
// (a tab in the background shows nothing). Changes are coalesced: at most one `view` message
// every 250 ms, carrying only the videos whose size or visibility changed since the last one
// the server took.

/** At most four `view` messages a second. */
const MIN_INTERVAL_MS = 250;
/** Entries in one `view` message; more wait for the next. */
const MAX_ENTRIES = 64;
/** The largest size the protocol takes. */
const MAX_PIXELS = 16384;

/** One video's entry for `view`, from its element's box. */
export function describeView({ participant, track }, { width, height, onScreen }, pixelRatio) {
  const scale = (pixels) => Math.min(MAX_PIXELS, Math.max(0, Math.round(pixels * pixelRatio)));
  const deviceWidth = onScreen ? scale(width) : 0;
  const deviceHeight = onScreen ? scale(height) : 0;
  return {
    participant,
    track,
    width: deviceWidth,
    height: deviceHeight,
    visible: onScreen && deviceWidth > 0 && deviceHeight > 0,
  };
}

export class ViewReporter {
  #send;
  /** element → {participant, track} it shows */
  #watched = new Map();
  /** element → whether it intersects the viewport; absent until the observer first says */
  #intersecting = new WeakMap();
  /** `participant track` → the last entry the server took */
  #sent = new Map();
  #resize;
  #intersection;
  #timer = null;
  #lastSentAt = -Infinity;

  /** @param {(tracks: object[]) => boolean} send sends one `view`; false when it could not */
  constructor(send) {
    this.#send = send;
    this.#resize = new ResizeObserver(() => this.#schedule());
    this.#intersection = new IntersectionObserver((entries) => {
      for (const entry of entries) this.#intersecting.set(entry.target, entry.isIntersecting);
      this.#schedule();
    });
    document.addEventListener('visibilitychange', () => this.#schedule());
  }

  /** Reports `element` as the video of `source` {participant, track} (again, if it changed). */
  watch(element, source) {
    const current = this.#watched.get(element);
    if (current && current.participant === source.participant && current.track === source.track) return;
    this.#watched.set(element, { participant: source.participant, track: source.track });
    if (!current) {
      this.#resize.observe(element);
      this.#intersection.observe(element);
    }
    this.#schedule();
  }

  /** Stops reporting `element` (its tile is gone, and the video with it). */
  unwatch(element) {
    const source = this.#watched.get(element);
    if (!source) return;
    this.#watched.delete(element);
    this.#sent.delete(`${source.participant} ${source.track}`);
    this.#resize.unobserve(element);
    this.#intersection.unobserve(element);
    this.#intersecting.delete(element);
  }

  /** Something moved that the observers may not see (a page turned, a layout changed). */
  changed() {
    this.#schedule();
  }

  /** Forgets what the server was told (a new membership knows nothing yet) and tells it again. */
  reset() {
    this.#sent.clear();
    this.#schedule();
  }

  #schedule() {
    if (this.#timer !== null) return;
    const wait = Math.max(0, this.#lastSentAt + MIN_INTERVAL_MS - performance.now());
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#flush();
    }, wait);
  }

  #flush() {
    const pageShown = document.visibilityState === 'visible';
    const changed = [];
    for (const [element, source] of this.#watched) {
      // Until the observer has looked, whether the tile is on screen is unknown: wait for it
      // rather than say "hidden" and take it back a moment later.
      if (!this.#intersecting.has(element)) continue;
      const box = element.getBoundingClientRect();
      const onScreen = pageShown && element.isConnected && this.#intersecting.get(element) && element.checkVisibility();
      const entry = describeView(source, { width: box.width, height: box.height, onScreen }, window.devicePixelRatio || 1);
      const key = `${entry.participant} ${entry.track}`;
      const last = this.#sent.get(key);
      if (last && last.width === entry.width && last.height === entry.height && last.visible === entry.visible) continue;
      changed.push(entry);
    }
    if (changed.length === 0) return;
    const batch = changed.slice(0, MAX_ENTRIES);
    if (!this.#send(batch)) return; // not in a room: `reset` tells everything once joined
    this.#lastSentAt = performance.now();
    for (const entry of batch) this.#sent.set(`${entry.participant} ${entry.track}`, entry);
    if (changed.length > batch.length) this.#schedule();
  }
}
