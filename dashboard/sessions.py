"""Sessions: who is logged in as which organisation.

A session is kept in this process, not in the cookie: it holds the organisation's Kafka
password, which the session's Kafka clients authenticate with, and a password has no
business in a browser's cookie jar, signed or not. The cookie carries only a random
session id, signed (itsdangerous, with its age) and ``HttpOnly``/``SameSite=Strict``, so
the page's scripts cannot read it and other sites cannot send it.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field

from itsdangerous import BadSignature, TimestampSigner
from pydantic import SecretStr

COOKIE = "metricloom_session"


@dataclass
class Session:
    """A logged-in organisation (and the password its Kafka clients use)."""

    id: str
    organization_id: str
    password: SecretStr
    expires_at: float = field(default=0.0)


class SessionStore:
    """Sessions by id, each for ``ttl_s`` from its login."""

    def __init__(self, secret: str, ttl_s: float) -> None:
        self._signer = TimestampSigner(secret, salt="metricloom-dashboard-session")
        self._ttl_s = ttl_s
        self._sessions: dict[str, Session] = {}

    @property
    def ttl_s(self) -> float:
        return self._ttl_s

    def create(self, org: str, password: SecretStr) -> tuple[Session, str]:
        """A new session and the cookie value that names it."""
        self._expire()
        session = Session(secrets.token_urlsafe(32), org, password, time.time() + self._ttl_s)
        self._sessions[session.id] = session
        return session, self._signer.sign(session.id).decode()

    def get(self, cookie: str | None) -> Session | None:
        """The session a cookie names, if the signature holds and it has not expired."""
        if not cookie:
            return None
        try:
            session_id = self._signer.unsign(cookie, max_age=int(self._ttl_s)).decode()
        except BadSignature:
            return None
        session = self._sessions.get(session_id)
        if session is None or session.expires_at < time.time():
            self._sessions.pop(session_id, None)
            return None
        return session

    def drop(self, session: Session) -> None:
        self._sessions.pop(session.id, None)

    def organizations(self) -> set[str]:
        """Organisations with a live session (their Kafka links stay open)."""
        self._expire()
        return {s.organization_id for s in self._sessions.values()}

    def _expire(self) -> None:
        now = time.time()
        for session_id in [k for k, s in self._sessions.items() if s.expires_at < now]:
            del self._sessions[session_id]
