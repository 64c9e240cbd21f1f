// Where the WebSocket lives: config.json beside the page, overridden by ?ws= in the address.
// ?token= is added to the WebSocket URL (stages that require a token refuse the handshake
// without it).

const FALLBACK_URL = "ws://127.0.0.1:8787/dev";

/**
 * Resolve the WebSocket URL for this page.
 * @param {Location} location the page's address
 * @returns {Promise<{url: string, source: string}>}
 */
export async function resolveWebSocketUrl(location) {
  const params = new URLSearchParams(location.search);
  let base = params.get("ws");
  let source = "the address (?ws=)";
  if (!base) {
    base = await readConfiguredUrl();
    source = base ? "config.json" : "the built-in default";
    base = base || FALLBACK_URL;
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

async function readConfiguredUrl() {
  try {
    const response = await fetch("config.json", { cache: "no-store" });
    if (!response.ok) return null;
    const config = await response.json();
    return typeof config.websocketUrl === "string" && config.websocketUrl ? config.websocketUrl : null;
  } catch {
    return null;
  }
}
