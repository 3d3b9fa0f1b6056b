"""store.uftp on SQLite and PostgreSQL: replays, claims with leases, the outbox's retries."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from store import uftp as store
from store.repository import RecordExistsError, RecordNotFoundError
from store.tables import UftpMessage

pytest_plugins = ["db_fixtures"]  # sessions


def _outbound(session: Session, n: int) -> list[int]:
    return [
        store.enqueue(session, message_type="TestMessage", xml=f"<TestMessage n='{i}'/>",
                      message_id=f"00000000-0000-0000-0000-{i:012d}",
                      conversation_id="c", sender_domain="agr.example.com",
                      recipient_domain="dso.example.com").id
        for i in range(n)
    ]


def test_replays_are_numbered_and_kept(sessions: sessionmaker[Session]) -> None:
    fields = {"message_type": "FlexRequest", "xml": "<a/>", "message_id": "m-1",
              "sender_domain": "dso.example.com"}
    with sessions.begin() as session:
        first, original = store.record_inbound(session, status="received", **fields)
        second, of_second = store.record_inbound(session, status="received", **fields)
        third, _ = store.record_inbound(session, status="received", **fields)
        assert original is None and of_second is not None and of_second.id == first.id
        assert [(r.duplicate, r.status) for r in (first, second, third)] == [
            (0, "received"), (1, "rejected"), (2, "rejected")]
        other, none = store.record_inbound(session, status="received",
                                           **{**fields, "sender_domain": "b.example.com"})
        assert none is None and other.duplicate == 0


def test_claims_are_exclusive_and_leases_expire(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        ids = _outbound(session, 6)
    claimed: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with sessions.begin() as session:
                row = store.claim(session, "out", timedelta(minutes=5))
                if row is None:
                    return
                with lock:
                    claimed.append(row.id)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(claimed) == sorted(ids)  # each once, none twice
    with sessions.begin() as session:
        assert store.claim(session, "out", timedelta(minutes=5)) is None  # all leased
        row = session.get(UftpMessage, ids[0])
        assert row is not None
        row.next_attempt_at = datetime.now(UTC) - timedelta(seconds=1)  # its worker died
    with sessions.begin() as session:
        again = store.claim(session, "out", timedelta(minutes=5))
        assert again is not None and (again.id, again.attempts) == (ids[0], 2)


def test_retry_later_and_sent(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        (row_id,) = _outbound(session, 1)
    with sessions.begin() as session:
        row = store.claim(session, "out", timedelta(minutes=5))
        assert row is not None and row.status == "sending"
        store.retry_later(session, row_id, "HTTP 503", timedelta(seconds=30))
    with sessions.begin() as session:
        assert store.claim(session, "out", timedelta(minutes=5)) is None  # not due yet
        row = session.get(UftpMessage, row_id)
        assert row is not None and (row.status, row.last_error) == ("queued", "HTTP 503")
        row.next_attempt_at = datetime.now(UTC)
    with sessions.begin() as session:
        row = store.claim(session, "out", timedelta(minutes=5))
        assert row is not None and row.attempts == 2
        store.finish(session, row_id, "sent")
    with sessions.begin() as session:
        assert store.next_due(session) is None


def test_participants(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        store.add_participant(session, "dso.example.com", "DSO", "k" * 44, "http://127.0.0.1:1")
        with pytest.raises(RecordExistsError):
            store.add_participant(session, "dso.example.com", "CRO", "k" * 44, "http://x")
        with pytest.raises(ValueError, match="role"):
            store.add_participant(session, "brp.example.com", "BRP", "k" * 44, "http://x")
        assert [p.domain for p in store.list_participants(session)] == ["dso.example.com"]
        store.delete_participant(session, "dso.example.com")
        with pytest.raises(RecordNotFoundError):
            store.delete_participant(session, "dso.example.com")
