// One RTCPeerConnection to the server, negotiated exactly as docs/signaling.md says.
//
// - Each published track goes on its own send-only transceiver; everything received comes on
//   transceivers the server creates, announced by `track_published` with their `mid`.
// - The client is the polite peer: when the server's offer crosses one of ours, ours is rolled
//   back, the server's is answered, and the browser's next `negotiationneeded` sends ours again.
//   The server never rolls back and ignores a crossing client offer, so it never answers it.
// - A client with nothing to publish still sends the first offer: the empty one a fresh
//   connection produces.
//
// - With `relay`, the connection uses TURN relays only (`iceTransportPolicy: 'relay'`). When
//   no relay can be had (the TURN server is unreachable or refuses the credentials) the
//   connection cannot work at all, and says why with an `unreachable` event as soon as the
//   browser has given up gathering, rather than after ICE times out.
//
// - A screen share's media section says `a=content:slides` (RFC 4796) in what is sent to the
//   server, which then puts it before cameras when a receiver's downlink is short. The browser
//   has no API for it; the attribute is added to the text sent, not to the local description.
//
// Events: `track` {mid, track}, `statechange` {state}, `failure` {message},
// `unreachable` {message}.

/** `sdp` with `a=content:slides` in the media sections whose mid is in `mids`. */
export function withContentSlides(sdp, mids) {
  if (mids.size === 0) return sdp;
  const newline = sdp.includes('\r\n') ? '\r\n' : '\n';
  const [session, ...sections] = sdp.split(`${newline}m=`);
  return [session, ...sections.map((section) => {
    const mid = /^a=mid:(\S+)$/m.exec(section)?.[1];
    if (mid === undefined || !mids.has(mid) || /^a=content:/m.test(section)) return section;
    return section.replace(/^(a=mid:\S+)$/m, `$1${newline}a=content:slides`);
  })].join(`${newline}m=`);
}

export class MediaConnection extends EventTarget {
  #pc;
  #send;
  #makingOffer = false;
  #pendingCandidates = [];
  #closed = false;
  #emptyOfferSent = false;
  #rollbacks = 0;
  #relay;
  #iceServers;
  #candidatesGathered = 0;
  /** What the browser's ICE agent reported failing: [{url, errorCode, errorText}] */
  #iceErrors = [];
  #unreachableSent = false;
  /** Transceivers publishing a presentation (a screen share). */
  #slides = new Set();

  /**
   * @param {object} options
   * @param {RTCIceServer[]} options.iceServers from the server's `joined`
   * @param {boolean} [options.relay] use TURN relays only
   * @param {(message: object) => void} options.send sends a signaling message
   */
  constructor({ iceServers, relay = false, send }) {
    super();
    this.#send = send;
    this.#relay = relay;
    this.#iceServers = iceServers;
    this.#pc = new RTCPeerConnection({
      iceServers,
      bundlePolicy: 'max-bundle',
      iceTransportPolicy: relay ? 'relay' : 'all',
    });
    this.#pc.addEventListener('negotiationneeded', () => this.#offer());
    this.#pc.addEventListener('icecandidate', ({ candidate }) => {
      // The end of gathering (a null candidate) needs no message.
      if (candidate && candidate.candidate) {
        this.#candidatesGathered += 1;
        this.#send({ type: 'candidate', candidate: candidate.toJSON() });
      }
    });
    this.#pc.addEventListener('icecandidateerror', ({ url, errorCode, errorText }) => {
      this.#iceErrors.push({ url, errorCode, errorText });
    });
    this.#pc.addEventListener('icegatheringstatechange', () => {
      if (this.#pc.iceGatheringState === 'complete' && this.#relay && this.#candidatesGathered === 0) {
        this.#reportUnreachable();
      }
    });
    this.#pc.addEventListener('track', (event) => {
      this.dispatchEvent(new CustomEvent('track', {
        detail: { mid: event.transceiver.mid, track: event.track },
      }));
    });
    this.#pc.addEventListener('connectionstatechange', () => {
      const state = this.#pc.connectionState;
      if (state === 'failed' && (this.#relay || this.#iceErrors.length > 0)) this.#reportUnreachable();
      this.dispatchEvent(new CustomEvent('statechange', { detail: { state } }));
    });
  }

  /** Says, once, that the media server cannot be reached, and what the ICE agent reported. */
  #reportUnreachable() {
    if (this.#unreachableSent || this.#closed) return;
    this.#unreachableSent = true;
    const turnUrls = this.#iceServers.flatMap(({ urls }) => (Array.isArray(urls) ? urls : [urls]))
      .filter((url) => /^turns?:/.test(url));
    const reasons = [...new Set(this.#iceErrors
      .filter(({ url }) => !url || /^turns?:/.test(url))
      .map(({ url, errorCode, errorText }) => {
        const text = (errorText ?? '').replace(/\.$/, '');
        return `${url ?? 'TURN'}: ${errorCode}${text ? ` ${text}` : ''}`;
      }))];
    let message;
    if (turnUrls.length === 0) {
      message = this.#relay
        ? 'Could not reach the media server: this page uses TURN relays only, and the server named none.'
        : 'Could not reach the media server.';
    } else if (this.#iceErrors.some(({ errorCode }) => errorCode === 401)) {
      message = `Could not reach the media server through TURN: the TURN server refused the credentials (${reasons.join('; ')}).`;
    } else {
      message = `Could not reach the media server through TURN${reasons.length > 0 ? ` (${reasons.join('; ')})` : ''}.`;
    }
    this.dispatchEvent(new CustomEvent('unreachable', { detail: { message } }));
  }

  /** The underlying connection, for statistics. */
  get peerConnection() {
    return this.#pc;
  }

  /** How often our offer gave way to a crossing server offer (for diagnosis). */
  get rollbacks() {
    return this.#rollbacks;
  }

  /** `new`, `connecting`, `connected`, `disconnected`, `failed` or `closed`. */
  get state() {
    return this.#pc.connectionState;
  }

  /**
   * Publishes `track` as part of `stream` on a new send-only transceiver, in the given
   * `encodings` (several with rids: simulcast; see simulcast.js), or the browser's one. With
   * `slides`, the server is told it is a presentation.
   */
  publish(track, stream, { encodings = null, slides = false } = {}) {
    const init = { direction: 'sendonly', streams: [stream] };
    if (encodings) init.sendEncodings = encodings;
    const transceiver = this.#pc.addTransceiver(track, init);
    if (slides) this.#slides.add(transceiver);
    return transceiver;
  }

  /** The transceiver of ours whose published track id (see `publishedTrackId`) is `track`. */
  senderOf(track) {
    for (const transceiver of this.#pc.getTransceivers()) {
      if (transceiver.currentDirection === 'stopped' || !transceiver.sender.track) continue;
      if (this.publishedTrackId(transceiver) === track) return transceiver.sender;
    }
    return null;
  }

  /**
   * Stops publishing what `transceiver` carries. Its media section stops sending in the next
   * offer, which is how the server learns the track ended.
   */
  unpublish(transceiver) {
    if (this.#closed || transceiver.currentDirection === 'stopped') return;
    transceiver.stop();
  }

  /**
   * The id the server knows a published track by: the track id of the transceiver's `msid` in
   * our SDP. It stays the same when `replaceTrack` swaps the device behind it.
   */
  publishedTrackId(transceiver) {
    const sdp = this.#pc.localDescription?.sdp ?? '';
    const sections = sdp.split(/\r?\nm=/).slice(1);
    for (const section of sections) {
      const mid = /^a=mid:(\S+)/m.exec(section)?.[1];
      if (mid === undefined || mid !== transceiver.mid) continue;
      const msid = /^a=msid:\S+ (\S+)/m.exec(section)?.[1];
      if (msid) return msid;
    }
    return transceiver.sender.track?.id ?? null;
  }

  /**
   * Sends the first offer. With tracks added, it is the offer that publishes them; without, it
   * is the empty offer of a connection with no transceivers.
   */
  async start() {
    if (this.#pc.getTransceivers().length > 0) return this.#offer();
    // Nothing to publish. The browser will not apply an offer without media sections (there is
    // nothing to bundle), and need not: the server answers it with an empty session and makes
    // the next offer itself.
    const offer = await this.#pc.createOffer();
    this.#emptyOfferSent = true;
    this.#send({ type: 'offer', sdp: offer.sdp });
  }

  /** Restarts ICE: the next offer carries new credentials. */
  restartIce() {
    if (!this.#closed) this.#pc.restartIce();
  }

  /** Handles `offer`, `answer` and `candidate` from the server. */
  async handle(message) {
    if (this.#closed) return;
    try {
      switch (message.type) {
        case 'offer': await this.#onOffer(message.sdp); break;
        case 'answer': await this.#onAnswer(message.sdp); break;
        case 'candidate': await this.#onCandidate(message.candidate); break;
      }
    } catch (error) {
      if (this.#closed) return;
      console.error(`negotiation: ${message.type} failed`, error);
      this.dispatchEvent(new CustomEvent('failure', { detail: { message: `${message.type}: ${error.message}` } }));
    }
  }

  close() {
    this.#closed = true;
    this.#pc.close();
  }

  async #offer() {
    if (this.#closed || this.#makingOffer || this.#pc.signalingState !== 'stable') {
      // Another negotiation is under way; the browser fires `negotiationneeded` again once it
      // is over if this change still needs one.
      return;
    }
    this.#makingOffer = true;
    try {
      await this.#pc.setLocalDescription();
      // If the server's offer arrived meanwhile, ours has been rolled back: do not send it.
      if (this.#pc.signalingState === 'have-local-offer') {
        this.#send({ type: 'offer', sdp: this.#sentSdp() });
      }
    } catch (error) {
      if (!this.#closed) {
        console.error('negotiation: creating an offer failed', error);
        this.dispatchEvent(new CustomEvent('failure', { detail: { message: `offer: ${error.message}` } }));
      }
    } finally {
      this.#makingOffer = false;
    }
  }

  async #onOffer(sdp) {
    if (this.#makingOffer || this.#pc.signalingState !== 'stable') {
      // Glare. We are the polite peer: our offer gives way. The server ignores it, and the
      // browser asks to negotiate again once we are stable.
      await this.#pc.setLocalDescription({ type: 'rollback' });
      this.#rollbacks += 1;
    }
    await this.#pc.setRemoteDescription({ type: 'offer', sdp });
    await this.#pc.setLocalDescription();
    this.#send({ type: 'answer', sdp: this.#sentSdp() });
    await this.#addPendingCandidates();
  }

  /** Our local description as the server is to read it. */
  #sentSdp() {
    const mids = new Set();
    for (const transceiver of this.#slides) {
      if (transceiver.mid !== null && transceiver.currentDirection !== 'stopped') mids.add(transceiver.mid);
    }
    return withContentSlides(this.#pc.localDescription.sdp, mids);
  }

  async #onAnswer(sdp) {
    if (this.#emptyOfferSent && this.#pc.signalingState === 'stable') {
      // The empty session answering our empty offer: nothing to apply.
      this.#emptyOfferSent = false;
      return;
    }
    if (this.#pc.signalingState !== 'have-local-offer') {
      console.warn('negotiation: ignoring an answer to an offer we no longer have');
      return;
    }
    await this.#pc.setRemoteDescription({ type: 'answer', sdp });
    await this.#addPendingCandidates();
  }

  async #onCandidate(candidate) {
    if (!this.#pc.remoteDescription) {
      this.#pendingCandidates.push(candidate);
      return;
    }
    await this.#addCandidate(candidate);
  }

  async #addPendingCandidates() {
    const pending = this.#pendingCandidates.splice(0);
    for (const candidate of pending) await this.#addCandidate(candidate);
  }

  async #addCandidate(candidate) {
    try {
      await this.#pc.addIceCandidate(candidate);
    } catch (error) {
      // A candidate for a connection state we have moved past is harmless.
      console.warn('negotiation: a server candidate was not added', error);
    }
  }
}
