// The control bar (microphone, camera, screen share, layout, devices, leave) and the device
// picker.
// Both only show state and report clicks; the page decides what a click does.

/** Sets a round toggle button's icon, pressed state and tooltip. */
function showToggle(button, { on, icon, title, disabled = false }) {
  button.setAttribute('aria-pressed', String(on));
  button.querySelector('use').setAttribute('href', `#icon-${icon}`);
  button.title = title;
  button.disabled = disabled;
}

export class ControlBar {
  #buttons;

  /**
   * @param {{mic: HTMLButtonElement, camera: HTMLButtonElement, screen: HTMLButtonElement,
   *          layout: HTMLButtonElement, devices: HTMLButtonElement, leave: HTMLButtonElement}} buttons
   * @param {{mic: Function, camera: Function, screen: Function, layout: Function, devices: Function,
   *          leave: Function}} actions
   */
  constructor(buttons, actions) {
    this.#buttons = buttons;
    for (const [name, action] of Object.entries(actions)) {
      buttons[name].addEventListener('click', () => action());
    }
  }

  /** Shows which layout is on: pressed for the speaker view, whose icon it shows until then. */
  showLayout(layout) {
    const speaker = layout === 'speaker';
    showToggle(this.#buttons.layout, {
      on: speaker,
      icon: speaker ? 'grid' : 'speaker-view',
      title: speaker ? 'Show everybody in a grid' : 'Speaker view: who speaks, large',
    });
  }

  /** Shows the state of our media. */
  show({ hasMic, micMuted, hasCamera, cameraOff, sharing, canShare }) {
    const { mic, camera, screen } = this.#buttons;
    showToggle(mic, hasMic
      ? { on: !micMuted, icon: micMuted ? 'mic-off' : 'mic', title: micMuted ? 'Unmute microphone' : 'Mute microphone' }
      : { on: false, icon: 'mic-off', title: 'No microphone', disabled: true });
    showToggle(camera, hasCamera
      ? { on: !cameraOff, icon: cameraOff ? 'camera-off' : 'camera', title: cameraOff ? 'Turn camera on' : 'Turn camera off' }
      : { on: false, icon: 'camera-off', title: 'No camera', disabled: true });
    showToggle(screen, {
      on: sharing,
      icon: 'screen',
      title: !canShare ? 'This browser cannot share a screen' : sharing ? 'Stop sharing' : 'Share your screen',
      disabled: !canShare,
    });
  }
}

/** The dialog for choosing a camera and a microphone. */
export class DevicePicker {
  #dialog;
  #cameras;
  #microphones;
  #error;
  #media;

  /**
   * @param {{dialog: HTMLDialogElement, cameras: HTMLSelectElement,
   *          microphones: HTMLSelectElement, error: HTMLElement}} elements
   * @param {import('./local-media.js').LocalMedia} media
   * @param {(kind: 'audio' | 'video', deviceId: string) => Promise<void>} choose
   */
  constructor({ dialog, cameras, microphones, error }, media, choose) {
    this.#dialog = dialog;
    this.#cameras = cameras;
    this.#microphones = microphones;
    this.#error = error;
    this.#media = media;
    const onChange = (kind, select) => async () => {
      this.#error.hidden = true;
      try {
        await choose(kind, select.value);
      } catch (failure) {
        this.#error.textContent = `That device could not be started: ${failure.message}`;
        this.#error.hidden = false;
      }
      await this.refresh();
    };
    cameras.addEventListener('change', onChange('video', cameras));
    microphones.addEventListener('change', onChange('audio', microphones));
    media.addEventListener('change', () => {
      if (dialog.open) this.refresh();
    });
  }

  async open() {
    this.#error.hidden = true;
    await this.refresh();
    this.#dialog.showModal();
  }

  async refresh() {
    const { cameras, microphones } = await this.#media.devices();
    fill(this.#cameras, cameras, this.#media.deviceId('video'), 'No camera');
    fill(this.#microphones, microphones, this.#media.deviceId('audio'), 'No microphone');
  }
}

function fill(select, devices, current, none) {
  select.replaceChildren(...devices.map((device) => new Option(device.label, device.id, false, device.id === current)));
  if (devices.length === 0) select.append(new Option(none, '', true, true));
  select.disabled = devices.length === 0;
  if (current === null && devices.length > 0) select.selectedIndex = -1;
}
