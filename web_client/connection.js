// One WebSocket that comes back by itself: after a drop it reconnects with exponential
// backoff (with jitter, so many pages do not return at the same instant) and tells the
// page what it is doing through callbacks.
//
// A socket can also die without closing (a network that went away mid-reply): while a
// reply is awaited, a few seconds without a frame send a `ping`, and a `ping` (that one,
// the 4-minute keepalive, or the one sent when the browser goes offline) with no frame
// back in time means the socket is dead: it is dropped and a new one made.

const FIRST_DELAY_MS = 500;
const MAX_DELAY_MS = 15000;
// API Gateway closes a connection after 10 idle minutes. A ping every 4 keeps it open for
// as long as the page is, with room to spare: a hidden tab's timers may run up to a minute
// late (Chrome's throttling), and one lost ping still leaves the next in time.
const KEEPALIVE_MS = 4 * 60 * 1000;
// While a reply is awaited: silence this long asks the server whether it is there...
const SILENCE_MS = 5000;
// ...and this long without an answer (any frame) means the socket is dead. The router
// answers `ping` itself, even while the model loads, so a live connection answers fast.
const ANSWER_TIMEOUT_MS = 8000;
const CHECK_EVERY_MS = 500;
const DEAD = 4000; // the close code the page uses for a socket it gave up on

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
    this.watchTimer = null;
    this.closedByPage = false;
    this.awaitingReply = false;
    this.lastFrameAt = 0;
    this.answerDeadline = null; // a ping is out: a frame must come back before this
    // Come back at once when the network does, instead of waiting out the backoff; when
    // it goes, find out at once whether this socket still works.
    window.addEventListener("online", () => this.reconnectNow());
    window.addEventListener("offline", () => this.probe());
    // A tab brought back (or a phone woken) may hold a socket that died while it slept.
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") this.probe();
    });
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
      if (this.socket !== socket) return;
      const reconnected = this.everOpened;
      this.everOpened = true;
      this.attempt = 0;
      this.heard();
      this.startTimers();
      this.handlers.onOpen?.(reconnected);
    });
    socket.addEventListener("message", ({ data }) => {
      if (this.socket !== socket) return;
      this.heard();
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
      this.stopTimers();
      if (!this.closedByPage) this.scheduleRetry(event);
    });
  }

  /** Send one JSON message; false when there is no open socket to send it on. */
  send(message) {
    if (!this.isOpen) return false;
    this.socket.send(JSON.stringify(message));
    return true;
  }

  /** While true, silence on the socket is checked (a reply is owed to the page). */
  expectReply(awaiting) {
    if (awaiting && !this.awaitingReply) this.lastFrameAt = performance.now();
    this.awaitingReply = awaiting;
  }

  /** Skip the rest of the backoff (the network came back, or the person asked). */
  reconnectNow() {
    if (this.retryTimer !== null) this.connect();
  }

  close() {
    this.closedByPage = true;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.stopTimers();
    this.socket?.close(1000, "page closed");
  }

  scheduleRetry(event) {
    const exponent = Math.max(0, Math.min(this.attempt - 1, 10));
    const ceiling = Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** exponent);
    const delay = Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
    this.retryTimer = setTimeout(() => this.connect(), delay);
    this.handlers.onClose?.(delay, this.attempt + 1, event);
  }

  /** Any frame at all shows the socket works. */
  heard() {
    this.lastFrameAt = performance.now();
    this.answerDeadline = null;
  }

  /** Ask the server for a sign of life (unless already asked). */
  probe() {
    if (!this.isOpen || this.answerDeadline !== null) return;
    this.answerDeadline = performance.now() + ANSWER_TIMEOUT_MS;
    this.socket.send(JSON.stringify({ action: "ping" }));
  }

  check() {
    const now = performance.now();
    if (this.answerDeadline !== null && now > this.answerDeadline) {
      this.giveUp();
    } else if (this.awaitingReply && now - this.lastFrameAt > SILENCE_MS) {
      this.probe();
    }
  }

  /** The socket stopped answering: drop it without waiting for a close that may never come. */
  giveUp() {
    const socket = this.socket;
    this.socket = null;
    this.stopTimers();
    try {
      socket?.close(DEAD, "no answer");
    } catch {
      // Closing a socket that is already going is fine to skip.
    }
    this.scheduleRetry(new CloseEvent("close", { code: DEAD, reason: "no answer to ping" }));
  }

  startTimers() {
    this.stopTimers();
    this.keepaliveTimer = setInterval(() => this.probe(), KEEPALIVE_MS);
    this.watchTimer = setInterval(() => this.check(), CHECK_EVERY_MS);
  }

  stopTimers() {
    clearInterval(this.keepaliveTimer);
    clearInterval(this.watchTimer);
    this.keepaliveTimer = null;
    this.watchTimer = null;
    this.answerDeadline = null;
  }
}
