// A server message too large for one WebSocket frame comes as `part` messages
// (docs/protocol.md): {type: "part", id, index, count, data}, each `data` a slice of the
// message's JSON text. Parts of one message come in order; parts of two may interleave.
// The joined text is parsed and handled as if the message had come whole. A set that is
// malformed (a gap, a repeat, a count that changes, text that is not one JSON object) is
// dropped, never thrown: the page goes on without that message. DOM-free: node --test
// runs it (tests/web/node/).

// Sets begun and not yet complete: a server sends one or two at once; past this the oldest
// is given up, so a stream of broken parts cannot hold memory without end.
export const MAX_PENDING_SETS = 8;

export class PartJoiner {
  constructor() {
    this.pending = new Map(); // id -> {count, slices}
    this.dropped = 0; // part sets given up (malformed or incomplete): for tests and logs
  }

  /**
   * One `part` message in: the whole message once its last part is in, else null.
   * @param {object} part
   * @returns {object | null}
   */
  add(part) {
    const { id, index, count, data } = part ?? {};
    const wellFormed =
      typeof id === "string" &&
      id !== "" &&
      Number.isInteger(count) &&
      count >= 1 &&
      Number.isInteger(index) &&
      index >= 0 &&
      index < count &&
      typeof data === "string";
    if (!wellFormed) {
      this.drop(id);
      return null;
    }
    let set = this.pending.get(id);
    if (set && (set.count !== count || index !== set.slices.length)) {
      this.drop(id); // out of order, repeated or recounted: the set cannot be trusted
      set = undefined;
      if (index !== 0) return null;
    }
    if (!set) {
      if (index !== 0) {
        this.dropped += 1; // its start was never seen
        return null;
      }
      set = { count, slices: [] };
      this.pending.set(id, set);
      if (this.pending.size > MAX_PENDING_SETS) this.drop(this.pending.keys().next().value);
    }
    set.slices.push(data);
    if (set.slices.length < count) return null;
    this.pending.delete(id);
    let message;
    try {
      message = JSON.parse(set.slices.join(""));
    } catch {
      message = null;
    }
    // A part set holds one message of another type: never an array, a scalar or a part.
    if (message === null || typeof message !== "object" || Array.isArray(message) || message.type === "part") {
      this.dropped += 1;
      return null;
    }
    return message;
  }

  /** A new connection: sets begun on the old one can never complete. */
  clear() {
    this.dropped += this.pending.size;
    this.pending.clear();
  }

  drop(id) {
    this.pending.delete(id);
    this.dropped += 1;
  }
}
