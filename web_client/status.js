// The status line. Its words go in an aria-live region, so they are short and change only
// when the state does; the ticking seconds and the attempt number sit beside them, hidden
// from screen readers so they are not read out every second. A reply's figures are under
// the reply, not here.

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
   * @param {string} words what the person reads (and a screen reader says)
   * @param {{since?: number, until?: number, detail?: string}} [clock] count up from
   *   `since`, or down to `until`; `detail` goes before the count, unannounced
   */
  set(state, words, clock = {}) {
    this.root.dataset.state = state;
    if (this.text.textContent !== words) this.text.textContent = words;
    clearInterval(this.timer);
    this.timer = null;
    const { since, until, detail } = clock;
    const prefix = detail ? `${detail} · ` : "";
    this.clock.textContent = detail ?? "";
    if (since === undefined && until === undefined) return;
    const tick = () => {
      const now = performance.now();
      const count =
        since !== undefined
          ? `${Math.floor((now - since) / 1000)} s`
          : `in ${Math.max(0, Math.ceil((until - now) / 1000))} s`;
      this.clock.textContent = prefix + count;
    };
    tick();
    this.timer = setInterval(tick, 250);
  }
}
