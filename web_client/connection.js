// One WebSocket that comes back by itself: after a drop it reconnects with exponential
// backoff (with jitter, so many pages do not return at the same instant) and tells the
// page what it is doing through callbacks.

const FIRST_DELAY_MS = 500;
const MAX_DELAY_MS = 15000;
// API Gateway closes a connection after 10 idle minutes; a ping every 4 keeps it open.
const KEEPALIVE_MS = 4 * 60 * 1000;

export class Connection {
  /**
   * @param {string} url the WebSocket URL
   * @param {{
   *   onConnecting?: (attempt: number) => void,
   *   onOpen?: (reconnected: boolean) => void,
   *   onMessage?: (message: object) => void,
   *   onUnreadable?: (raw: unknown) => void,
   *   onClose?: (retryInMs: number, nextAttempt: number, event: CloseEvent) => void,
   * }} handlers
   */
  constructor(url, handlers) {
    this.url = url;
    this.handlers = handlers;
    this.socket = null;
    this.attempt = 0;
    this.everOpened = false;
    this.retryTimer = null;
    this.keepaliveTimer = null;
    this.closedByPage = false;
    // Come back at once when the network does, instead of waiting out the backoff.
    window.addEventListener("online", () => this.reconnectNow());
  }

  get isOpen() {
    return this.socket !== null && this.socket.readyState === WebSocket.OPEN;
  }

  connect() {
    this.closedByPage = false;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.attempt += 1;
    this.handlers.onConnecting?.(this.attempt);
    let socket;
    try {
      socket = new WebSocket(this.url);
    } catch (error) {
      // A malformed URL throws at once; treat it like a refused connection.
      this.scheduleRetry(new CloseEvent("close", { code: 1006, reason: String(error) }));
      return;
    }
    this.socket = socket;
    socket.addEventListener("open", () => {
      const reconnected = this.everOpened;
      this.everOpened = true;
      this.attempt = 0;
      this.startKeepalive();
      this.handlers.onOpen?.(reconnected);
    });
    socket.addEventListener("message", ({ data }) => {
      let message;
      try {
        message = JSON.parse(data);
      } catch {
        this.handlers.onUnreadable?.(data);
        return;
      }
      if (message === null || typeof message !== "object" || Array.isArray(message)) {
        this.handlers.onUnreadable?.(data);
        return;
      }
      this.handlers.onMessage?.(message);
    });
    socket.addEventListener("close", (event) => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.stopKeepalive();
      if (!this.closedByPage) this.scheduleRetry(event);
    });
  }

  /** Send one JSON message; false when there is no open socket to send it on. */
  send(message) {
    if (!this.isOpen) return false;
    this.socket.send(JSON.stringify(message));
    return true;
  }

  /** Skip the rest of the backoff (the network came back, or the person asked). */
  reconnectNow() {
    if (this.retryTimer !== null) this.connect();
  }

  close() {
    this.closedByPage = true;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.stopKeepalive();
    this.socket?.close(1000, "page closed");
  }

  scheduleRetry(event) {
    const exponent = Math.max(0, Math.min(this.attempt - 1, 10));
    const ceiling = Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** exponent);
    const delay = Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
    this.retryTimer = setTimeout(() => this.connect(), delay);
    this.handlers.onClose?.(delay, this.attempt + 1, event);
  }

  startKeepalive() {
    this.stopKeepalive();
    this.keepaliveTimer = setInterval(() => this.send({ action: "ping" }), KEEPALIVE_MS);
  }

  stopKeepalive() {
    clearInterval(this.keepaliveTimer);
    this.keepaliveTimer = null;
  }
}
