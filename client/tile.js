// One tile: a person's video (or their initials when there is none, or the camera is off), the
// name, a muted-microphone and a camera-off indicator, a ring while they speak, and a "low
// bandwidth" mark while the server has paused their video for want of bandwidth.

/** Up to two initials of a display name. */
export function initials(name) {
  const words = name.trim().split(/\s+/).filter(Boolean);
  const letters = words.length > 1 ? [words[0], words[words.length - 1]] : words;
  return letters.map((word) => [...word][0].toUpperCase()).join('') || '?';
}

export class Tile {
  constructor({ key, local, kind }) {
    this.key = key;
    this.local = local;
    this.kind = kind;
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

    this.lowBandwidth = document.createElement('span');
    this.lowBandwidth.className = 'low-bandwidth';
    this.lowBandwidth.textContent = 'Low bandwidth';
    this.lowBandwidth.title = 'Video paused: the connection has no room for it now';
    this.lowBandwidth.hidden = true;

    const caption = document.createElement('figcaption');
    this.micOff = indicator('mic-off', 'Microphone muted');
    this.cameraOff = indicator('camera-off', 'Camera off');
    this.name = document.createElement('span');
    this.name.className = 'name';
    caption.append(this.micOff, this.cameraOff, this.name);
    this.element.append(this.video, this.avatar, this.lowBandwidth, caption);
    this.trackIds = '';
    /** The participant and track id of the video shown, for the server ({participant, track}), or null. */
    this.videoSource = null;
    this.hasVideo = false;
  }

  /** The participant whose tile this is (our own tiles: none). */
  get participant() {
    return this.element.dataset.participant ?? null;
  }

  /**
   * @param {object} view
   * @param {string} view.label the caption
   * @param {string} view.name whose initials to show without video
   * @param {MediaStreamTrack[]} view.tracks what to play
   * @param {boolean} view.showVideo whether the video is worth showing (present and not off)
   * @param {boolean} view.micMuted
   * @param {boolean} view.cameraOff
   * @param {boolean} [view.mirrored] our own camera, shown as in a mirror
   * @param {boolean} [view.lowBandwidth] the server paused the video for want of bandwidth
   * @param {{participant: string, track: string} | null} [view.videoSource] the video received
   */
  update(view) {
    this.name.textContent = view.label;
    this.avatarText.textContent = initials(view.name);
    this.micOff.hidden = !view.micMuted;
    this.cameraOff.hidden = !view.cameraOff;
    this.element.toggleAttribute('data-mic-muted', view.micMuted);
    this.element.toggleAttribute('data-camera-off', view.cameraOff);
    this.element.classList.toggle('no-video', !view.showVideo);
    this.hasVideo = view.showVideo;
    this.video.classList.toggle('mirrored', Boolean(view.mirrored));
    const lowBandwidth = Boolean(view.lowBandwidth);
    this.lowBandwidth.hidden = !lowBandwidth;
    this.element.toggleAttribute('data-video-paused', lowBandwidth);
    this.videoSource = view.videoSource ?? null;
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

  /** Shows whether the person speaks now. */
  setSpeaking(speaking) {
    this.element.toggleAttribute('data-speaking', speaking);
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
