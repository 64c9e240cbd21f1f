// What a screen reader should hear once, politely: a finished reply, a copy. One
// visually hidden live region; each announcement replaces the last.

export class Announcer {
  /** @param {HTMLElement} region an element with aria-live="polite" */
  constructor(region) {
    this.region = region;
  }

  say(text) {
    const line = document.createElement("p");
    line.textContent = text;
    this.region.replaceChildren(line);
  }
}
