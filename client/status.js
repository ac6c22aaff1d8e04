// Messages for the person: a few lasting ones (reconnecting, camera blocked), each under a key
// so it can be replaced or cleared, and passing ones that fade after a few seconds.

const PASSING_MS = 4000;
/** Passing messages shown at once; older ones make way (fifty people joining at once). */
const MAX_PASSING = 3;

export class StatusBoard {
  #container;
  /** @type {Map<string, HTMLElement>} */
  #lasting = new Map();

  constructor(container) {
    this.#container = container;
  }

  /** Shows (or replaces) the lasting message under `key`. */
  set(key, text, level = 'info') {
    let element = this.#lasting.get(key);
    if (!element) {
      element = document.createElement('p');
      element.dataset.key = key;
      this.#lasting.set(key, element);
      this.#container.append(element);
    }
    element.className = `message ${level}`;
    element.textContent = text;
  }

  clear(key) {
    this.#lasting.get(key)?.remove();
    this.#lasting.delete(key);
  }

  /** Shows a message that goes away by itself. */
  flash(text, level = 'info') {
    const element = document.createElement('p');
    element.className = `message passing ${level}`;
    element.textContent = text;
    this.#container.append(element);
    setTimeout(() => element.remove(), PASSING_MS);
    const passing = this.#container.querySelectorAll('.message.passing');
    for (const old of [...passing].slice(0, Math.max(0, passing.length - MAX_PASSING))) old.remove();
  }
}
