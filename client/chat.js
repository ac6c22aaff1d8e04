// The chat side panel: the room's messages in the order the server stamped them, a box to
// write in, and an unread count on the button while the panel is closed.

const MAX_CHARS = 2000;

export class ChatPanel {
  #panel;
  #list;
  #form;
  #input;
  #badge;
  #button;
  #unread = 0;
  #send;

  /**
   * @param {object} elements the panel, its list, form, input, the toggle button and its badge
   * @param {(text: string) => boolean} send sends one message; false when it could not be sent
   */
  constructor({ panel, list, form, input, button, badge, close }, send) {
    this.#panel = panel;
    this.#list = list;
    this.#form = form;
    this.#input = input;
    this.#button = button;
    this.#badge = badge;
    this.#send = send;
    button.addEventListener('click', () => this.toggle());
    close.addEventListener('click', () => this.toggle(false));
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      this.#submit();
    });
    input.addEventListener('keydown', (event) => {
      // Enter sends; Shift+Enter starts a new line.
      if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.#submit();
      }
    });
  }

  get isOpen() {
    return !this.#panel.hidden;
  }

  toggle(open = !this.isOpen) {
    this.#panel.hidden = !open;
    this.#button.setAttribute('aria-pressed', String(open));
    if (open) {
      this.#setUnread(0);
      this.#input.focus();
      this.#scrollToEnd();
    }
    // The grid's size changed.
    window.dispatchEvent(new Event('resize'));
  }

  /** Shows one message. */
  add({ name, text, at, self, participant }) {
    const item = document.createElement('li');
    item.className = self ? 'chat-message self' : 'chat-message';
    item.dataset.participant = participant;
    const header = document.createElement('div');
    header.className = 'chat-meta';
    const who = document.createElement('span');
    who.className = 'chat-name';
    who.textContent = self ? `${name} (you)` : name;
    const when = document.createElement('time');
    const date = new Date(at);
    when.dateTime = date.toISOString();
    when.textContent = date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    header.append(who, when);
    const body = document.createElement('p');
    body.className = 'chat-text';
    body.textContent = text;
    item.append(header, body);
    const atEnd = this.#list.scrollHeight - this.#list.scrollTop - this.#list.clientHeight < 40;
    this.#list.append(item);
    if (atEnd || self) this.#scrollToEnd();
    if (!this.isOpen && !self) this.#setUnread(this.#unread + 1);
  }

  /** A line that is not a message: somebody joined, the connection was restored. */
  note(text) {
    const item = document.createElement('li');
    item.className = 'chat-note';
    item.textContent = text;
    this.#list.append(item);
    this.#scrollToEnd();
  }

  #submit() {
    const text = this.#input.value;
    if (text.trim() === '') return;
    if ([...text].length > MAX_CHARS) {
      this.note(`A message can be at most ${MAX_CHARS} characters.`);
      return;
    }
    if (this.#send(text)) this.#input.value = '';
    else this.note('Not connected: the message was not sent.');
  }

  #setUnread(count) {
    this.#unread = count;
    this.#badge.hidden = count === 0;
    this.#badge.textContent = count > 99 ? '99+' : String(count);
  }

  #scrollToEnd() {
    this.#list.scrollTop = this.#list.scrollHeight;
  }
}
