// How our video is encoded, and which of its layers are sent.
//
// The camera goes out in three VP8 layers of the same picture (simulcast): `q` at a quarter of
// the width, `h` at half, `f` at full size, each with a bitrate cap. A smaller camera gets fewer
// layers: Chromium sends no more layers than a picture's size warrants (two below 960x540, one
// below 480x270) and drops the *top* ones, so asking a 640x360 camera for three layers would
// send only its quarter and half, never the full picture. The server forwards each
// subscriber the one its tile needs, and tells us with `layers` which ones somebody receives;
// the others are switched off here (`RTCRtpSender.setParameters`, `active: false`) so they
// cost neither our CPU nor our uplink. A screen share is one layer tuned for sharp text.
//
// What the server asked for is remembered per track id (the id our SDP announces, which stays
// the same when a device switch replaces the sender's track), and applied again whenever the
// sender changes.

/** The camera's layers, lowest first (docs/signaling.md, "Simulcast"). */
export const CAMERA_ENCODINGS = Object.freeze([
  { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150_000 },
  { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500_000 },
  { rid: 'f', scaleResolutionDownBy: 1, maxBitrate: 1_500_000 },
]);

/** The picture sizes (in pixels) from which Chromium sends three, and two, layers. */
const THREE_LAYERS_FROM = 960 * 540;
const TWO_LAYERS_FROM = 480 * 270;

/**
 * The layers for a camera whose picture is `width` × `height`: all three from 960x540 on, the
 * half and full ones from 480x270 on, and below that one layer of the browser's choosing (null:
 * no simulcast).
 */
export function cameraEncodings({ width, height }) {
  const pixels = (width ?? 0) * (height ?? 0);
  if (pixels >= THREE_LAYERS_FROM) return sendEncodings(CAMERA_ENCODINGS);
  if (pixels >= TWO_LAYERS_FROM) return sendEncodings(CAMERA_ENCODINGS.slice(1));
  return null;
}

/** A screen share: one layer, enough bits for text to stay readable. */
export const SCREEN_ENCODINGS = Object.freeze([{ maxBitrate: 2_500_000 }]);

/** Fresh copies of `encodings`, for `addTransceiver` (which may keep and change them). */
export function sendEncodings(encodings) {
  return encodings.map((encoding) => ({ ...encoding }));
}

/**
 * Sets each encoding's `active` to whether its rid is in `active`. Returns whether anything
 * changed. Encodings without a rid (no simulcast was negotiated) are left alone, as is a list
 * that would switch every layer off, which the server never asks for.
 */
export function applyActiveLayers(encodings, active) {
  const layered = encodings.filter((encoding) => encoding.rid);
  if (layered.length === 0 || !layered.some((encoding) => active.includes(encoding.rid))) return false;
  let changed = false;
  for (const encoding of layered) {
    const on = active.includes(encoding.rid);
    if (encoding.active !== on) {
      encoding.active = on;
      changed = true;
    }
  }
  return changed;
}

/** Applies the server's `layers` messages to our senders. */
export class LayerControl {
  /** track id → the rids the server last wanted */
  #wanted = new Map();
  #findSender;
  /** setParameters calls on one sender must not overlap: they run one after the other. */
  #queue = Promise.resolve();

  /** @param {(track: string) => RTCRtpSender | null} findSender our sender of a track id */
  constructor(findSender) {
    this.#findSender = findSender;
  }

  /** Handles `layers` {track, active}. */
  want(track, active) {
    if (typeof track !== 'string' || !Array.isArray(active)) return Promise.resolve();
    this.#wanted.set(track, active.filter((rid) => typeof rid === 'string'));
    return this.apply(track);
  }

  /** Applies what the server wants of `track` to its current sender (after a device switch too). */
  apply(track) {
    const active = this.#wanted.get(track);
    if (!active) return Promise.resolve();
    this.#queue = this.#queue.then(async () => {
      const sender = this.#findSender(track);
      if (!sender) return;
      const parameters = sender.getParameters();
      if (!applyActiveLayers(parameters.encodings ?? [], active)) return;
      try {
        await sender.setParameters(parameters);
      } catch (error) {
        // The sender went away meanwhile (a left room, a stopped share): nothing to apply.
        console.warn(`layers: could not apply ${active.join(',')} to track ${track}`, error);
      }
    });
    return this.#queue;
  }

  /** Forgets everything (a new membership: the server will say again). */
  clear() {
    this.#wanted.clear();
  }
}
