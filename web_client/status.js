// The status line. The words go in an aria-live region; the ticking seconds sit beside it,
// hidden from screen readers so they are not read out every second.

export class StatusLine {
  /**
   * @param {{root: HTMLElement, text: HTMLElement, clock: HTMLElement}} elements
   */
  constructor({ root, text, clock }) {
    this.root = root;
    this.text = text;
    this.clock = clock;
    this.timer = null;
  }

  /**
   * @param {string} state a name for styling and tests: connecting, connected, loading, ...
   * @param {string} words what the person reads
   * @param {{since?: number, until?: number}} [clock] count up from `since`, or down to `until`
   */
  set(state, words, clock = {}) {
    this.root.dataset.state = state;
    if (this.text.textContent !== words) this.text.textContent = words;
    clearInterval(this.timer);
    this.timer = null;
    this.clock.textContent = "";
    const { since, until } = clock;
    if (since === undefined && until === undefined) return;
    const tick = () => {
      const now = performance.now();
      if (since !== undefined) {
        this.clock.textContent = `${Math.floor((now - since) / 1000)} s`;
      } else {
        this.clock.textContent = `in ${Math.max(0, Math.ceil((until - now) / 1000))} s`;
      }
    };
    tick();
    this.timer = setInterval(tick, 250);
  }
}
