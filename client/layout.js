// Where tiles go: pure arithmetic over counts and pixel sizes, with no DOM, so the browser
// tests can check it directly (tests/browser/layout.test.js).
//
// Two layouts. The grid shows every tile at one size, as large as the space allows, and puts
// what does not fit at a readable size on further pages. The speaker view shows one tile large
// (the stage: a screen share, else the person speaking) above a strip of small tiles, paged
// the same way. A tile on another page is hidden, and hidden tiles receive no video.

export const TILE_ASPECT = 16 / 9;
export const GAP_PX = 8;
/** The smallest grid tile, in CSS pixels: a face is still a face, a name still fits. */
export const MIN_TILE_WIDTH_PX = 200;
/** The strip of the speaker view: its height is a share of the space, within these bounds. */
const STRIP_SHARE = 0.16;
const STRIP_MIN_HEIGHT_PX = 72;
const STRIP_MAX_HEIGHT_PX = 135;

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

/**
 * How many of `count` tiles one grid page shows: as many as fit at `minWidth` or wider, and
 * at least one.
 */
export function gridPageSize(count, width, height, minWidth = MIN_TILE_WIDTH_PX) {
  for (let size = count; size > 1; size -= 1) {
    if (bestLayout(size, width, height).tileWidth >= minWidth) return size;
  }
  return 1;
}

/** The number of pages `count` tiles take at `size` a page (one, for none). */
export function pageCount(count, size) {
  return Math.max(1, Math.ceil(count / Math.max(size, 1)));
}

/** The page `page` clamped to the pages there are. */
export function clampPage(page, pages) {
  return Math.min(Math.max(0, page), pages - 1);
}

/**
 * The grid for `count` tiles in `width` × `height` on page `page`:
 * {pageSize, pages, page, first, shown, columns, tileWidth}, `first` and `shown` being the
 * tiles (by index) on that page.
 */
export function gridLayout(count, width, height, page) {
  const pageSize = gridPageSize(count, width, height);
  const pages = pageCount(count, pageSize);
  const current = clampPage(page, pages);
  const first = current * pageSize;
  const shown = Math.min(pageSize, count - first);
  const { columns, tileWidth } = bestLayout(shown, width, height);
  return { pageSize, pages, page: current, first, shown, columns, tileWidth };
}

/**
 * The speaker view for one stage tile and `stripCount` others in `width` × `height` on page
 * `page` of the strip: {stageWidth, stageHeight, stripHeight, tileWidth, pageSize, pages,
 * page, first, shown}. Without others there is no strip and the stage takes everything.
 */
export function speakerLayout(stripCount, width, height, page) {
  const stripHeight = stripCount === 0 ? 0
    : Math.round(Math.min(STRIP_MAX_HEIGHT_PX, Math.max(STRIP_MIN_HEIGHT_PX, height * STRIP_SHARE)));
  const tileWidth = Math.floor(stripHeight * TILE_ASPECT);
  const pageSize = Math.max(1, Math.floor((width + GAP_PX) / (tileWidth + GAP_PX)));
  const pages = pageCount(stripCount, pageSize);
  const current = clampPage(page, pages);
  const first = current * pageSize;
  const shown = Math.max(0, Math.min(pageSize, stripCount - first));
  const stageBox = Math.max(0, height - (stripCount === 0 ? 0 : stripHeight + GAP_PX));
  const stageWidth = Math.floor(Math.max(0, Math.min(width, stageBox * TILE_ASPECT)));
  const stageHeight = Math.floor(stageWidth / TILE_ASPECT);
  return { stageWidth, stageHeight, stripHeight, tileWidth, pageSize, pages, page: current, first, shown };
}

/**
 * Which tile takes the stage of the speaker view. `tiles`: [{key, kind, participant, local,
 * hasVideo}] in the grid's order; `active`: the dominant speaker's participant id or null;
 * `previous`: the key on the stage until now. Someone else's screen share comes first (the
 * one already shown, else the first); then the active speaker's person tile unless it is our
 * own; then whoever was there; then the first other person with video, the first other tile,
 * and our own tile when we are alone.
 */
export function chooseStage(tiles, { active, previous }) {
  const remote = tiles.filter((tile) => !tile.local);
  const screens = remote.filter((tile) => tile.kind === 'screen');
  if (screens.length > 0) return (screens.find((tile) => tile.key === previous) ?? screens[0]).key;
  const speaker = remote.find((tile) => tile.kind === 'person' && tile.participant === active);
  if (speaker) return speaker.key;
  const kept = remote.find((tile) => tile.key === previous);
  if (kept) return kept.key;
  const withVideo = remote.find((tile) => tile.hasVideo);
  return (withVideo ?? remote[0] ?? tiles[0])?.key ?? null;
}
