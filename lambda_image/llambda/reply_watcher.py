"""Watching a running reply: a thread polls the conversation's item while tokens flow, for
a stop mark (or a `reset`, or the conversation forgotten), for a client that attached from
another connection (the reply resumes there), and to renew the lease. A reply whose client
went away goes on for the stage's grace period, waiting for one to attach (polling faster
then), and is stopped when none does."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from botocore.exceptions import ClientError

from llambda.conversations import Attachment, ConversationStore, ReplyState
from llambda.dispatch import Dispatch
from llambda.handlers import aws
from llambda.observability import logger
from llambda.sender import StreamSender
from llambda.settings import InferenceSettings

# A poll failing with one of these will fail every time (a missing grant, a wrong table):
# the reply ends with an error rather than run on with no way to stop it.
PERMANENT_ERRORS = frozenset(
    {"AccessDeniedException", "ResourceNotFoundException", "UnrecognizedClientException"}
)


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


class ReplyWatcher:
    """Polls the conversation every `poll_s` (every `detached_poll_s` while no client is
    attached) for a stop mark and a new attachment, and renews the lease now and then."""

    def __init__(
        self,
        store: ConversationStore,
        dispatch: Dispatch,
        sender: StreamSender,
        connections: aws.ManagementApis,
        *,
        settings: InferenceSettings,
        on_stop: Callable[[], None],
    ) -> None:
        self._store = store
        self._dispatch = dispatch
        self._sender = sender
        self._connections = connections
        self._poll_s = settings.stop_poll_ms / 1000
        self._detached_poll_s = settings.resume_poll_ms / 1000
        self._grace_s = settings.reply_grace_seconds
        self._lease_seconds = settings.lease_seconds
        self._on_stop = on_stop
        self._finished = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reply-watcher", daemon=True)
        self.attachment = Attachment(dispatch.connection_id, dispatch.attach_count)
        self.stopped = False
        self.gone = False  # the conversation was forgotten
        self.expired = False  # no client attached within the grace
        self.failure: ClientError | None = None  # a poll that can never succeed

    def start(self) -> ReplyWatcher:
        self._thread.start()
        return self

    def finish(self) -> None:
        self._finished.set()
        self._thread.join(10)

    def follow(self, attachment: Attachment | None, *, reset: bool) -> None:
        """Stream to `attachment` if a client attached since the last one seen.

        While a reply runs, it answers the `attach` itself (the router leaves it to the
        reply), so the answer comes before the replayed deltas: one sender, one order.
        """
        if attachment is None or attachment.count == self.attachment.count:
            return
        logger.info("client attached; resuming there", extra={"seen_seq": attachment.seen_seq})
        self.attachment = attachment
        dispatch = self._dispatch
        self._sender.retarget(
            self._connections.poster(dispatch.callback_url, attachment.connection_id),
            seen_seq=attachment.seen_seq,
            greeting=dispatch.attached(reset=reset),
        )

    def _stop(self) -> None:
        self.stopped = True
        self._on_stop()

    def _run(self) -> None:
        renewed = time.monotonic()
        while not self._finished.wait(
            self._detached_poll_s if self._sender.detached else self._poll_s
        ):
            try:
                check = self._store.reply_check(
                    self._dispatch.conversation_id, self._dispatch.reply_id
                )
                self.follow(check.attachment, reset=check.epoch != self._dispatch.epoch)
                if check.state is ReplyState.RUN and (
                    time.monotonic() - renewed >= self._lease_seconds / 3
                ):
                    self._store.renew_lease(
                        self._dispatch.conversation_id,
                        self._dispatch.reply_id,
                        self._lease_seconds,
                    )
                    renewed = time.monotonic()
            except Exception as error:  # a failed poll is tried again, unless it always will
                logger.exception("reply poll failed")
                if isinstance(error, ClientError) and _error_code(error) in PERMANENT_ERRORS:
                    self.failure = error
                    self._stop()
                    return
                continue
            if check.state is not ReplyState.RUN:
                logger.info("reply asked to stop", extra={"state": check.state.value})
                self.gone = check.state is ReplyState.GONE
                self._stop()
                return
            if self._sender.detached and self._sender.detached_seconds() >= self._grace_s:
                logger.info("no client attached within the grace; stopping the reply")
                self.expired = True
                self._stop()
                return
