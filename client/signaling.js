// The signaling WebSocket: one JSON object per text frame, both ways (docs/signaling.md).
//
// A SignalingSocket lives for one connection. It reports every server message and, once, how
// it closed; whoever owns it decides whether to open another (see call.js).

/** The signaling URL of the server that served this page. */
export function signalingUrl(location = window.location) {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}/ws`;
}

export class SignalingSocket extends EventTarget {
  #socket;
  #closedByUs = false;

  constructor(socket) {
    super();
    this.#socket = socket;
    socket.addEventListener('message', (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        console.warn('signaling: ignoring a frame that is not JSON', event.data);
        return;
      }
      if (message === null || typeof message !== 'object' || typeof message.type !== 'string') {
        console.warn('signaling: ignoring a frame without a type', message);
        return;
      }
      this.dispatchEvent(new CustomEvent('message', { detail: message }));
    });
    socket.addEventListener('close', (event) => {
      this.dispatchEvent(new CustomEvent('close', {
        detail: { code: event.code, reason: event.reason, byUs: this.#closedByUs },
      }));
    }, { once: true });
  }

  /** Opens a socket to `url`; rejects if it cannot be opened. */
  static open(url) {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(url);
      const failed = () => reject(new Error(`cannot reach the server at ${url}`));
      socket.addEventListener('error', failed, { once: true });
      socket.addEventListener('close', failed, { once: true });
      socket.addEventListener('open', () => {
        socket.removeEventListener('error', failed);
        socket.removeEventListener('close', failed);
        resolve(new SignalingSocket(socket));
      }, { once: true });
    });
  }

  /** Whether messages can be sent. */
  get isOpen() {
    return this.#socket.readyState === WebSocket.OPEN;
  }

  /** Sends one message; returns whether the socket took it. */
  send(message) {
    if (!this.isOpen) return false;
    this.#socket.send(JSON.stringify(message));
    return true;
  }

  /** Closes the socket on purpose; the close event says `byUs`. */
  close(code = 1000, reason = 'bye') {
    this.#closedByUs = true;
    if (this.#socket.readyState === WebSocket.CONNECTING || this.#socket.readyState === WebSocket.OPEN) {
      this.#socket.close(code, reason);
    }
  }
}
