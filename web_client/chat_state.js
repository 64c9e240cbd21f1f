// The page's states, named in one place. The page holds one ChatState; the controls, the
// hint and the status follow from `phase`, never from loose flags.

/** Where the prompt in flight is. The page is IDLE when there is none. */
export const Phase = Object.freeze({
  IDLE: "idle", // nothing in flight: the box sends
  QUEUED: "queued", // typed and kept: waiting for the connection, or for an old reply to end
  SENT: "sent", // sent; nothing back yet
  STREAMING: "streaming", // the reply is arriving
  STOPPING: "stopping", // Stop was sent; the reply's own end is awaited
});

/** What a turn asks of the server (docs/protocol.md, "What the page's buttons send"). */
export const TurnKind = Object.freeze({
  NEW: "new", // a typed prompt
  EDIT: "edit", // the last prompt, edited: replaces the last exchange
  REGENERATE: "regenerate", // the last prompt again: replaces the last reply
  CONTINUE: "continue", // more of a reply cut off at the length limit
});

/** One prompt on its way: from the box (or a button) to the end of its reply. */
export class Turn {
  /**
   * @param {{kind: string, prompt: string, options?: object, promptView?: object,
   *   replaces?: {promptView?: object, reply?: object}, resumes?: object, needsReset?: boolean,
   *   freshContext?: boolean}} fields
   */
  constructor({ kind, prompt, options, promptView, replaces, resumes, needsReset, freshContext }) {
    this.kind = kind;
    this.prompt = prompt;
    this.options = options ?? {};
    this.promptView = promptView ?? null; // the bubble it is shown in (none for Continue)
    this.replaces = replaces ?? null; // views hidden while it runs, gone once it starts
    this.resumes = resumes ?? null; // the reply a Continue adds to
    this.needsReset = Boolean(needsReset); // send `reset` first: the server must forget
    this.freshContext = Boolean(freshContext); // and say so: earlier turns are forgotten
    this.sent = false;
    this.started = false; // a `status` or `delta` came back for it
    this.stopping = false;
    this.reply = null;
    this.retry = null; // {attempts, until}: a `busy` refusal just after a reply is retried
    this.stopTimer = null;
    this.rememberedBefore = 0; // prompts the conversation held when this one was sent
    this.seq = -1; // the last delta of its reply shown: a resumed reply goes on after it
  }

  get phase() {
    if (!this.sent) return Phase.QUEUED;
    if (this.stopping) return Phase.STOPPING;
    return this.started ? Phase.STREAMING : Phase.SENT;
  }

  /** It came from the box: if it never goes, its text goes back there. */
  get typed() {
    return this.kind === TurnKind.NEW || this.kind === TurnKind.EDIT;
  }
}

/**
 * Where the conversation shown stands with the server (docs/protocol.md, "Conversations").
 * `conversation` null: a new one, started by the next chat. Otherwise it is being attached
 * (`attaching`), attached to this connection (`attached`), or taken by another connection
 * (`detached`: nothing is sent for it until the person takes it back).
 */
export class ChatState {
  constructor() {
    this.conversation = null; // the server's id of the conversation shown, once it has one
    this.showing = null; // the id whose turns the view holds (null: draw it on `attached`)
    this.attaching = null; // the id an `attach` was sent for, until its answer
    this.attached = false; // its replies stream to this connection
    this.detached = false; // another connection attached it
    this.turn = null; // the Turn in flight, or null (one at a time)
    this.lastTurn = null; // the last answered exchange, for Regenerate, Edit and Continue
    this.editing = null; // the exchange whose prompt is being edited in the box
    this.awaitingReset = null; // a timer: `reset` was sent, its answer is not back yet
    this.busyRetry = null; // a timer: a prompt refused as `busy` waits for its next try
    this.lastReplyEnd = -Infinity; // when a reply in this conversation last ended
    this.remembered = 0; // prompts the server keeps in this conversation (since its last reset)
    this.dropNotice = null; // the "connection dropped" notice of this outage, if shown
  }

  get phase() {
    return this.turn?.phase ?? Phase.IDLE;
  }
}
