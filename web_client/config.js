// What the page is told about its stage: config.json beside the page (the stack writes it
// at deploy; the local twin serves the same), with ?ws= and ?token= in the address on top.
//
// config.json: {"websocketUrl": "wss://…", "model": "…", "maxPromptChars": 8000,
//   "maxTokensCap": 512, "defaultMaxTokens": 256, "maxTemperature": 2}; every key but
// websocketUrl may be missing (an older stack), and the page then simply does not check.

const FALLBACK_URL = "ws://127.0.0.1:8787/dev";
const LIMITS = ["maxPromptChars", "maxTokensCap", "defaultMaxTokens", "maxTemperature"];

/**
 * @typedef {{maxPromptChars?: number, maxTokensCap?: number, defaultMaxTokens?: number,
 *   maxTemperature?: number}} Limits
 * @typedef {{url: string, source: string, model: string, limits: Limits}} PageConfig
 */

/**
 * @param {Location} location the page's address
 * @returns {Promise<PageConfig>}
 */
export async function loadPageConfig(location) {
  const file = await readConfigFile();
  const limits = {};
  for (const key of LIMITS) {
    if (Number.isFinite(file[key]) && file[key] > 0) limits[key] = file[key];
  }
  const model = typeof file.model === "string" ? file.model.trim() : "";
  return { ...resolveWebSocketUrl(location, file.websocketUrl), model, limits };
}

/**
 * The WebSocket URL: ?ws= in the address, else config.json's, else the local default;
 * ?token= is added to it (stages that require a token refuse the handshake without it).
 * @returns {{url: string, source: string}}
 */
export function resolveWebSocketUrl(location, configured) {
  const params = new URLSearchParams(location.search);
  let base = params.get("ws");
  let source = "the address (?ws=)";
  if (!base) {
    const fromFile = typeof configured === "string" && configured ? configured : null;
    source = fromFile ? "config.json" : "the built-in default";
    base = fromFile ?? FALLBACK_URL;
  }
  const url = new URL(base, location.href);
  if (url.protocol === "http:") url.protocol = "ws:";
  if (url.protocol === "https:") url.protocol = "wss:";
  if (url.protocol !== "ws:" && url.protocol !== "wss:") {
    throw new Error(`The WebSocket address from ${source} must start with ws:// or wss://.`);
  }
  const token = params.get("token");
  if (token) url.searchParams.set("token", token);
  return { url: url.toString(), source };
}

async function readConfigFile() {
  try {
    const response = await fetch("config.json", { cache: "no-store" });
    if (!response.ok) return {};
    const config = await response.json();
    return config !== null && typeof config === "object" ? config : {};
  } catch {
    return {};
  }
}
