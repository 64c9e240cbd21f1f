// The reply settings a person may change: max tokens and temperature, within the stage's
// caps (config.json), remembered in this browser. Empty means the server's default, and
// nothing is sent for it.

import { closesLikeAMenu } from "./dom.js";

const STORAGE_KEY = "llambda.settings";
const TEMPERATURE_STEP = 0.1;

export class Settings {
  /**
   * @param {{panel: HTMLDetailsElement, maxTokens: HTMLInputElement,
   *   temperature: HTMLInputElement, reset: HTMLButtonElement, note: HTMLElement}} elements
   */
  constructor({ panel, maxTokens, temperature, reset, note }) {
    this.panel = panel;
    this.maxTokens = maxTokens;
    this.temperature = temperature;
    this.note = note;
    this.caps = { maxTokensCap: 512, defaultMaxTokens: 256, maxTemperature: 2 };
    const saved = readSaved();
    if (Number.isInteger(saved.maxTokens)) maxTokens.value = String(saved.maxTokens);
    if (Number.isFinite(saved.temperature)) temperature.value = String(saved.temperature);
    for (const input of [maxTokens, temperature]) {
      input.addEventListener("change", () => this.save());
      input.addEventListener("input", () => this.validate());
    }
    reset.addEventListener("click", () => {
      maxTokens.value = "";
      temperature.value = "";
      this.save();
    });
    closesLikeAMenu(panel);
    this.applyCaps();
  }

  /** The stage's caps from config.json (any missing one keeps the protocol's default). */
  setCaps({ maxTokensCap, defaultMaxTokens, maxTemperature }) {
    if (maxTokensCap) this.caps.maxTokensCap = Math.floor(maxTokensCap);
    if (defaultMaxTokens) this.caps.defaultMaxTokens = Math.floor(defaultMaxTokens);
    if (maxTemperature) this.caps.maxTemperature = maxTemperature;
    this.applyCaps();
  }

  /** The chat `options` to send: only what the person set, clamped to the caps. */
  options() {
    const options = {};
    const tokens = this.readMaxTokens();
    const temperature = this.readTemperature();
    if (tokens !== null) options.max_tokens = tokens;
    if (temperature !== null) options.temperature = temperature;
    return options;
  }

  applyCaps() {
    const { maxTokensCap, defaultMaxTokens, maxTemperature } = this.caps;
    this.maxTokens.max = String(maxTokensCap);
    this.maxTokens.placeholder = `default (${Math.min(defaultMaxTokens, maxTokensCap)})`;
    this.temperature.max = String(maxTemperature);
    this.temperature.step = String(TEMPERATURE_STEP);
    this.temperature.placeholder = "model default";
    this.note.textContent =
      `Max tokens 1 to ${maxTokensCap}; temperature 0 to ${maxTemperature}. ` +
      "Empty means the server's default. Kept in this browser.";
    this.validate();
  }

  readMaxTokens() {
    const raw = this.maxTokens.value.trim();
    if (raw === "") return null;
    const value = Math.round(Number(raw));
    if (!Number.isFinite(value)) return null;
    return Math.min(Math.max(value, 1), this.caps.maxTokensCap);
  }

  readTemperature() {
    const raw = this.temperature.value.trim();
    if (raw === "") return null;
    const value = Number(raw);
    if (!Number.isFinite(value)) return null;
    return Math.round(Math.min(Math.max(value, 0), this.caps.maxTemperature) * 100) / 100;
  }

  validate() {
    for (const [input, read] of [
      [this.maxTokens, () => this.readMaxTokens()],
      [this.temperature, () => this.readTemperature()],
    ]) {
      const raw = input.value.trim();
      const value = read();
      const invalid = raw !== "" && (value === null || String(value) !== String(Number(raw)));
      input.setAttribute("aria-invalid", String(invalid));
    }
  }

  /** Store the values as they will be sent, and show them so. */
  save() {
    const tokens = this.readMaxTokens();
    const temperature = this.readTemperature();
    this.maxTokens.value = tokens === null ? "" : String(tokens);
    this.temperature.value = temperature === null ? "" : String(temperature);
    this.validate();
    try {
      localStorage.setItem(STORAGE_KEY, JSON.stringify({ maxTokens: tokens, temperature }));
    } catch {
      // Storage can be unavailable (private mode): the settings last until the page closes.
    }
  }
}

function readSaved() {
  try {
    const saved = JSON.parse(localStorage.getItem(STORAGE_KEY) ?? "{}");
    return saved !== null && typeof saved === "object" ? saved : {};
  } catch {
    return {};
  }
}
