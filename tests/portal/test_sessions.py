"""The session store on its own: fresh unguessable ids, idle and absolute timeouts on an injected clock,
sign-out that ends a session here, a bound on how many are kept, and the CSRF comparison."""

from __future__ import annotations

import pytest

from broker.portal.config import SessionSettings
from broker.portal.sessions import CsrfRefused, SessionStore, check_csrf
from tests.portal.conftest import PRACTITIONER


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_each_session_has_a_fresh_unguessable_id_and_its_own_csrf_token():
    store = SessionStore(clock=Clock())
    ids = set()
    tokens = set()
    for _ in range(50):
        session_id, session = store.create(PRACTITIONER)
        ids.add(session_id)
        tokens.add(session.csrf_token)
        assert len(session_id) >= 43  # 32 random bytes, URL-safe base64
    assert len(ids) == len(tokens) == 50
    assert not ids & tokens


def test_the_store_keeps_no_session_id_only_its_hash():
    store = SessionStore(clock=Clock())
    session_id, session = store.create(PRACTITIONER)
    assert session_id not in repr(store._sessions)
    assert store.get(session_id) is session


def test_a_session_idle_for_15_minutes_is_over():
    clock = Clock()
    store = SessionStore(clock=clock)
    session_id, _ = store.create(PRACTITIONER)
    clock.now += 15 * 60 - 1
    assert store.get(session_id) is not None  # and this use starts the idle time again
    clock.now += 15 * 60 - 1
    assert store.get(session_id) is not None
    clock.now += 15 * 60
    assert store.get(session_id) is None
    assert len(store) == 0


def test_a_session_ends_8_hours_after_sign_in_however_busy():
    clock = Clock()
    store = SessionStore(clock=clock)
    session_id, _ = store.create(PRACTITIONER)
    for _ in range(47):  # every 10 minutes for 7 h 50 min
        clock.now += 10 * 60
        assert store.get(session_id) is not None
    clock.now += 10 * 60
    assert store.get(session_id) is None


def test_ending_a_session_makes_its_id_worthless():
    store = SessionStore(clock=Clock())
    session_id, _ = store.create(PRACTITIONER)
    store.end(session_id)
    assert store.get(session_id) is None
    store.end(session_id)  # twice is harmless


def test_unknown_or_altered_ids_are_no_session():
    store = SessionStore(clock=Clock())
    session_id, _ = store.create(PRACTITIONER)
    assert store.get("") is None
    assert store.get(session_id[:-1] + ("A" if session_id[-1] != "A" else "B")) is None
    assert store.get(session_id + "x") is None


def test_the_store_is_bounded_dropping_expired_then_least_recently_used():
    clock = Clock()
    store = SessionStore(SessionSettings(max_sessions=3), clock=clock)
    first, _ = store.create(PRACTITIONER)
    second, _ = store.create(PRACTITIONER)
    third, _ = store.create(PRACTITIONER)
    assert store.get(first) is not None  # second is now the least recently used
    fourth, _ = store.create(PRACTITIONER)
    assert len(store) == 3
    assert store.get(second) is None
    assert all(store.get(s) is not None for s in (first, third, fourth))


def test_csrf_token_must_be_the_sessions_own():
    store = SessionStore(clock=Clock())
    _, session = store.create(PRACTITIONER)
    _, other = store.create(PRACTITIONER)
    check_csrf(session, session.csrf_token)
    for wrong in (None, "", other.csrf_token, session.csrf_token[:-1], session.csrf_token + "x", "\ud800é"):
        with pytest.raises(CsrfRefused):
            check_csrf(session, wrong)
