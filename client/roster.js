// Who is in the room and what reaches us from each of them.
//
// The server announces every track before the offer that carries it (`track_published`, with
// the `mid` of our transceiver that carries it), and reuses a transceiver for another track
// once the first has ended. So a received track is always looked up by `mid` in the *latest*
// announcement, and announcements, not renegotiation, decide what is shown: a track is gone
// the moment `track_unpublished` or `participant_left` says so.
//
// The roster turns that into tiles. Every participant has a person tile; their first stream
// (a camera and its microphone share one) shows in it. A further stream, such as a screen
// share, gets a tile of its own. Event: `change` {participant} whenever anything about that
// participant's tiles changed.

/** A stream as shown in one tile. */
export class StreamView {
  constructor(id) {
    this.id = id;
    /** @type {Map<string, {mid: string, kind: string, track: string, muted: boolean, paused: boolean}>} by mid */
    this.publications = new Map();
  }

  /** The announcement of the stream's track of `kind`, if it has one. */
  publication(kind) {
    for (const publication of this.publications.values()) {
      if (publication.kind === kind) return publication;
    }
    return null;
  }

  get hasAudio() {
    return this.publication('audio') !== null;
  }
}

export class Roster extends EventTarget {
  /** @type {Map<string, {id: string, name: string, streams: Map<string, StreamView>}>} */
  #participants = new Map();
  /** mid → the latest announcement for it */
  #byMid = new Map();
  /** mid → the MediaStreamTrack its transceiver receives */
  #receivedTracks = new Map();
  /** participant id → name, kept after they leave so old chat stays readable */
  #names = new Map();

  /** Starts over with the participants a `joined` message lists. */
  reset(participants) {
    const before = [...this.#participants.keys()];
    this.#participants.clear();
    this.#byMid.clear();
    this.#receivedTracks.clear();
    for (const id of before) this.#changed(id);
    for (const participant of participants) this.add(participant);
  }

  /** Forgets everybody (the connection is gone). */
  clear() {
    this.reset([]);
  }

  add({ id, name }) {
    this.#names.set(id, name);
    if (this.#participants.has(id)) return;
    this.#participants.set(id, { id, name, streams: new Map() });
    this.#changed(id);
  }

  remove(id) {
    const participant = this.#participants.get(id);
    if (!participant) return;
    for (const stream of participant.streams.values()) {
      for (const mid of stream.publications.keys()) this.#byMid.delete(mid);
    }
    this.#participants.delete(id);
    this.#changed(id);
  }

  /** Records a `track_published` announcement. */
  published({ participant: id, track, kind, stream: streamId, mid, muted }) {
    this.#forgetMid(mid);
    const participant = this.#participants.get(id);
    if (!participant) return;
    let stream = participant.streams.get(streamId);
    if (!stream) {
      stream = new StreamView(streamId);
      participant.streams.set(streamId, stream);
    }
    const publication = { participant: id, mid, kind, track, muted: Boolean(muted), paused: false, stream: streamId };
    stream.publications.set(mid, publication);
    this.#byMid.set(mid, publication);
    this.#changed(id);
  }

  /** Records a `track_unpublished` announcement. */
  unpublished({ mid }) {
    this.#forgetMid(mid);
  }

  /** Records a `mute` message. */
  muted({ participant: id, track, muted }) {
    const participant = this.#participants.get(id);
    if (!participant) return;
    for (const stream of participant.streams.values()) {
      for (const publication of stream.publications.values()) {
        if (publication.track === track) publication.muted = Boolean(muted);
      }
    }
    this.#changed(id);
  }

  /** Records a `video_paused` message: the server paused (or resumed) a video for want of bandwidth. */
  videoPaused({ participant: id, track, paused }) {
    const participant = this.#participants.get(id);
    if (!participant) return;
    for (const stream of participant.streams.values()) {
      for (const publication of stream.publications.values()) {
        if (publication.track === track) publication.paused = Boolean(paused);
      }
    }
    this.#changed(id);
  }

  /** The browser's track for `mid` arrived (`ontrack`). */
  received(mid, track) {
    this.#receivedTracks.set(mid, track);
    const publication = this.#byMid.get(mid);
    if (publication) this.#changed(publication.participant);
  }

  /** The MediaStreamTrack our transceiver `mid` receives, once the browser reported it. */
  trackFor(mid) {
    return this.#receivedTracks.get(mid) ?? null;
  }

  /** The display name of a participant, present or past. */
  nameOf(id) {
    return this.#names.get(id) ?? 'Someone';
  }

  get size() {
    return this.#participants.size;
  }

  participant(id) {
    return this.#participants.get(id) ?? null;
  }

  /**
   * The tiles of a participant: their person tile (with their first stream, which is the one
   * with their microphone when they have one) and one tile per further stream.
   */
  tilesOf(id) {
    const participant = this.#participants.get(id);
    if (!participant) return [];
    const streams = [...participant.streams.values()];
    const primary = streams.find((stream) => stream.hasAudio) ?? streams[0] ?? null;
    const tiles = [{ key: `${id}`, kind: 'person', participant, stream: primary }];
    for (const stream of streams) {
      if (stream !== primary) tiles.push({ key: `${id}/${stream.id}`, kind: 'screen', participant, stream });
    }
    return tiles;
  }

  #forgetMid(mid) {
    const previous = this.#byMid.get(mid);
    if (!previous) return;
    this.#byMid.delete(mid);
    const participant = this.#participants.get(previous.participant);
    const stream = participant?.streams.get(previous.stream);
    if (stream) {
      stream.publications.delete(mid);
      if (stream.publications.size === 0) participant.streams.delete(stream.id);
    }
    this.#changed(previous.participant);
  }

  #changed(participant) {
    this.dispatchEvent(new CustomEvent('change', { detail: { participant } }));
  }
}
