// Our own camera and microphone, the choice of devices, and screen capture.
//
// The camera and microphone share one MediaStream, so the others see them as one person's
// stream; a screen share gets a stream of its own. Asking for both at once is one permission
// prompt; when that fails, each is asked for alone, so a denied or missing camera still leaves
// the microphone (and the other way round), and the person can always join to watch and listen.
//
// Muting keeps the track and sets `enabled = false`: the browser then sends silence or black
// frames, and switching back is instant. Events: `change` whenever a track, its state or the
// device list changed.

/** Audio processing asked for on every microphone. */
const AUDIO_PROCESSING = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };

/** What a getUserMedia failure means to a person. */
function describeFailure(kind, error) {
  const device = kind === 'video' ? 'camera' : 'microphone';
  switch (error?.name) {
    case 'NotAllowedError':
    case 'SecurityError':
      return { reason: 'denied', text: `Access to your ${device} was denied` };
    case 'NotFoundError':
    case 'OverconstrainedError':
      return { reason: 'missing', text: `No ${device} was found` };
    case 'NotReadableError':
    case 'AbortError':
      return { reason: 'busy', text: `Your ${device} is in use by another program` };
    default:
      return { reason: 'failed', text: `Your ${device} could not be started` };
  }
}

/**
 * Parses a capture size like `320x180@15` (width × height @ frames per second), which the page
 * accepts as `?video=` to go easy on slow machines.
 */
export function parseVideoSize(text) {
  const match = /^(\d{2,4})x(\d{2,4})(?:@(\d{1,2}))?$/.exec(text ?? '');
  if (!match) return null;
  const [, width, height, fps] = match;
  return { width: Number(width), height: Number(height), frameRate: fps ? Number(fps) : undefined };
}

export class LocalMedia extends EventTarget {
  /** The stream our camera and microphone are published in. */
  stream = new MediaStream();
  /** @type {MediaStreamTrack | null} */
  camera = null;
  /** @type {MediaStreamTrack | null} */
  microphone = null;
  /** Why the camera or microphone is not available: {video?: {reason, text}, audio?: ...} */
  problems = {};
  micMuted = false;
  cameraOff = false;
  #video;

  /** @param {{width?: number, height?: number, frameRate?: number} | null} videoSize */
  constructor(videoSize) {
    super();
    const size = videoSize ?? { width: 1280, height: 720, frameRate: 30 };
    this.#video = {
      width: { ideal: size.width },
      height: { ideal: size.height },
      ...(size.frameRate ? { frameRate: { ideal: size.frameRate } } : {}),
    };
    navigator.mediaDevices?.addEventListener?.('devicechange', () => this.#changed());
  }

  /** Asks for the camera and microphone; never throws: what failed is in `problems`. */
  async start() {
    if (!navigator.mediaDevices?.getUserMedia) {
      const text = 'This browser cannot capture media here (a secure context is needed)';
      this.problems = { audio: { reason: 'failed', text }, video: { reason: 'failed', text } };
      this.#changed();
      return;
    }
    this.problems = {};
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: AUDIO_PROCESSING, video: this.#video });
      for (const track of stream.getTracks()) this.#adopt(track);
    } catch {
      // Ask for each alone, to keep whichever works and to know why the other does not.
      await this.#startOne('audio');
      await this.#startOne('video');
    }
    this.#changed();
  }

  async #startOne(kind) {
    try {
      const constraints = kind === 'audio' ? { audio: AUDIO_PROCESSING } : { video: this.#video };
      const stream = await navigator.mediaDevices.getUserMedia(constraints);
      for (const track of stream.getTracks()) this.#adopt(track);
    } catch (error) {
      this.problems[kind] = describeFailure(kind, error);
    }
  }

  /** One sentence about what is missing, or null when both work. */
  get problemText() {
    const { audio, video } = this.problems;
    if (!audio && !video) return null;
    if (audio && video) {
      const same = audio.reason === video.reason;
      const both = same && audio.reason === 'denied' ? 'Access to your camera and microphone was denied'
        : same && audio.reason === 'missing' ? 'No camera or microphone was found'
          : `${video.text}, and ${audio.text.charAt(0).toLowerCase()}${audio.text.slice(1)}`;
      return `${both}. You can still join to watch and listen.`;
    }
    if (video) return `${video.text}. You can still join: others will hear you, and you will see and hear them.`;
    return `${audio.text}. You can still join: others will see you, and you will see and hear them.`;
  }

  setMicMuted(muted) {
    this.micMuted = muted;
    if (this.microphone) this.microphone.enabled = !muted;
    this.#changed();
  }

  setCameraOff(off) {
    this.cameraOff = off;
    if (this.camera) this.camera.enabled = !off;
    this.#changed();
  }

  /** Cameras and microphones, for choosing. Labels are empty before permission is granted. */
  async devices() {
    const all = (await navigator.mediaDevices?.enumerateDevices?.()) ?? [];
    const named = (device, index, fallback) => ({ id: device.deviceId, label: device.label || `${fallback} ${index + 1}` });
    return {
      cameras: all.filter((device) => device.kind === 'videoinput').map((device, index) => named(device, index, 'Camera')),
      microphones: all.filter((device) => device.kind === 'audioinput').map((device, index) => named(device, index, 'Microphone')),
    };
  }

  /** The device id in use for `kind`, if any. */
  deviceId(kind) {
    const track = kind === 'video' ? this.camera : this.microphone;
    return track?.getSettings().deviceId ?? null;
  }

  /**
   * Switches to another camera or microphone. Returns {previous, track}: the caller swaps the
   * track on its sender (`replaceTrack`) and the previous one is stopped here afterwards.
   */
  async switchDevice(kind, deviceId) {
    const constraints = kind === 'video'
      ? { video: { ...this.#video, deviceId: { exact: deviceId } } }
      : { audio: { ...AUDIO_PROCESSING, deviceId: { exact: deviceId } } };
    const stream = await navigator.mediaDevices.getUserMedia(constraints);
    const [track] = stream.getTracks();
    const previous = kind === 'video' ? this.camera : this.microphone;
    if (previous) this.stream.removeTrack(previous);
    this.#adopt(track);
    delete this.problems[kind];
    this.#changed();
    return {
      previous,
      track,
      done: () => previous?.stop(),
    };
  }

  /** Asks the browser for a screen, window or tab to share: {track, stream}. */
  async captureScreen() {
    const stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { ideal: 15 } }, audio: false });
    const [track] = stream.getVideoTracks();
    track.contentHint = 'detail';
    return { track, stream };
  }

  #adopt(track) {
    if (track.kind === 'video') {
      this.camera = track;
      track.enabled = !this.cameraOff;
    } else {
      this.microphone = track;
      track.enabled = !this.micMuted;
    }
    this.stream.addTrack(track);
    track.addEventListener('ended', () => {
      // The device went away (unplugged, or revoked by the browser).
      if (this.camera === track) {
        this.camera = null;
        this.problems.video = { reason: 'missing', text: 'Your camera stopped' };
      }
      if (this.microphone === track) {
        this.microphone = null;
        this.problems.audio = { reason: 'missing', text: 'Your microphone stopped' };
      }
      this.stream.removeTrack(track);
      this.#changed();
    });
  }

  #changed() {
    this.dispatchEvent(new Event('change'));
  }
}
