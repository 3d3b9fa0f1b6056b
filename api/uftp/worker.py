"""The UFTP worker: one daemon thread per API process (per Serve replica).

It processes the inbox (messages stored ``received`` by the endpoint) and delivers the
outbox (``queued`` messages), both in the database, so nothing is lost when a process dies:

* a row is claimed with a lease (:func:`store.uftp.claim`); a worker that dies leaves its
  row claimed until the lease passes, and then any worker (the restarted one, or another
  replica's) claims it again. Several replicas never work on the same row at once.
* processing runs the handler in one transaction with the ``processed`` status and the
  messages it queues (:mod:`api.uftp.handlers`);
* delivery signs the stored payload, POSTs the ``SignedMessage`` to the recipient's
  registered endpoint and marks it ``sent`` on HTTP 200; otherwise it is due again after a
  wait doubling from 1 s to ``VPP_UFTP_RETRY_MAX`` (default 300 s), indefinitely. Only a
  message whose recipient is no longer registered fails (there is nowhere to send it).

The thread wakes when the endpoint or the admin API queues something (:meth:`kick`) and at
the latest every ``poll`` seconds, or when the next retry is due.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy.orm import Session, sessionmaker

from actors.metrics import uftp_message
from api.uftp import handlers, protocol
from api.uftp.protocol import RejectionError, UftpConfig
from api.uftp.verify import queue_response
from store import uftp as store
from store.tables import utcnow

__all__ = ["LEASE", "SEND_TIMEOUT", "UftpWorker", "backoff", "count"]


logger = logging.getLogger(__name__)

LEASE = timedelta(minutes=5)
SEND_TIMEOUT = 10.0


def count(direction: str, message_type: str, outcome: str) -> None:
    """Count the message in ``vpp_uftp_messages`` (a no-op where Ray is not running)."""
    try:
        uftp_message(direction, message_type, outcome)
    except Exception:  # metrics must never break message handling
        logger.debug("could not count a UFTP message", exc_info=True)


def backoff(attempts: int, cap: timedelta) -> timedelta:
    """1 s, 2 s, 4 s, ... after the 1st, 2nd, 3rd failed attempt, at most ``cap``."""
    return min(timedelta(seconds=2.0 ** max(attempts - 1, 0)), cap)


class UftpWorker:
    def __init__(self, sessions: sessionmaker[Session], poll: float = 5.0) -> None:
        self.sessions = sessions
        self.poll = poll
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client = httpx.Client(timeout=SEND_TIMEOUT, trust_env=False)

    def start(self) -> UftpWorker:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="uftp-worker", daemon=True)
            self._thread.start()
        return self

    def kick(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._client.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self.step()
            except Exception:  # a database hiccup: log, wait, go on
                logger.exception("UFTP worker step failed")
                busy = False
            if not busy:
                self._wake.wait(self._idle_wait())
                self._wake.clear()

    def _idle_wait(self) -> float:
        try:
            with self.sessions() as session:
                due = store.next_due(session)
        except Exception:
            return self.poll
        if due is None:
            return self.poll
        return max(0.05, min(self.poll, (due - utcnow()).total_seconds()))

    def step(self) -> bool:
        """Process one inbound and deliver one outbound message; whether there was any."""
        if not protocol.is_configured():
            return False
        cfg = protocol.config()
        processed = self.process_one(cfg)
        delivered = self.deliver_one(cfg)
        return processed or delivered

    # ------------------------------------------------------------------ inbox
    def process_one(self, cfg: UftpConfig) -> bool:
        with self.sessions.begin() as session:
            row = store.claim(session, "in", LEASE)
            if row is None:
                return False
            row_id, xml, sender, name = row.id, row.xml, row.sender_domain, row.type
        message = protocol.from_xml(xml)
        try:
            with self.sessions.begin() as session:
                participant = store.get_participant(session, sender)
                if participant is None:
                    raise RejectionError("Unknown Sender: the participant was removed")
                outcome = handlers.handle(session, message, participant, cfg)
                store.finish(session, row_id, "processed")
        except RejectionError as rejection:
            self._reject(row_id, message, sender, rejection.reason, cfg)
            count("in", name, "rejected")
            return True
        except Exception as err:
            logger.exception("processing %s %s failed", name, row_id)
            with self.sessions.begin() as session:
                store.finish(session, row_id, "failed", error=f"{type(err).__name__}: {err}")
            count("in", name, "failed")
            return True
        logger.info("processed %s from %s: %s", name, sender, outcome)
        count("in", name, "processed")
        self.kick()  # it may have queued replies
        return True

    def _reject(
        self, row_id: int, message: Any, sender: str | None, reason: str, cfg: UftpConfig
    ) -> None:
        with self.sessions.begin() as session:
            store.finish(session, row_id, "rejected", rejection_reason=reason)
            if sender is not None and store.get_participant(session, sender) is not None:
                queue_response(session, message, sender, reason, cfg)
        logger.warning("rejected %s %s: %s", type(message).__name__, row_id, reason)
        self.kick()

    # ------------------------------------------------------------------ outbox
    def deliver_one(self, cfg: UftpConfig) -> bool:
        with self.sessions.begin() as session:
            row = store.claim(session, "out", LEASE)
            if row is None:
                return False
            row_id, xml, name, attempts = row.id, row.xml, row.type, row.attempts
            participant = store.get_participant(session, row.recipient_domain)
            endpoint = participant.endpoint if participant is not None else None
        if endpoint is None:  # nowhere to send it, now or later: it fails, visibly
            with self.sessions.begin() as session:
                store.finish(session, row_id, "failed",
                             error="the recipient is no registered participant")
            count("out", name, "failed")
            return True
        error = self._post(endpoint, xml, cfg)
        with self.sessions.begin() as session:
            if error is None:
                store.finish(session, row_id, "sent")
            else:
                store.retry_later(session, row_id, error, backoff(attempts, cfg.retry_max))
        count("out", name, "sent" if error is None else "retry")
        return True

    def _post(self, endpoint: str, xml: str, cfg: UftpConfig) -> str | None:
        """Deliver one payload; ``None`` on success, else what went wrong."""
        try:
            envelope = protocol.signed_envelope(xml, cfg)
            response = self._client.post(
                endpoint,
                content=envelope.encode("utf-8"),
                headers={"Content-Type": "text/xml; charset=utf-8"},
            )
        except httpx.HTTPError as err:
            return f"{type(err).__name__}: {err}"
        if response.status_code != 200:
            return f"HTTP {response.status_code}: {response.text[:200]}"
        return None
