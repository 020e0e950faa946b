"""Provider tokens encrypted at rest, with keys that can be rotated.

A token is stored as ``v1:<key id>:<base64url(nonce ‖ ciphertext ‖ tag)>``: AES-256-GCM
from the ``cryptography`` package (authenticated, so a changed byte is refused rather than
decrypted to garbage). The associated data is the connection's organisation and id, so a
sealed token copied into another organisation's row (or another connection) does not
open: the row a token belongs to is part of what was sealed.

The keys come from one setting, ``METRICLOOM_TOKEN_KEYS``: ``id:base64key`` pairs separated
by commas, the first one current. Every key opens what it sealed; only the first seals.
Rotating is: put a new key first, run ``metricloom tokens rotate`` (it re-seals every
token with the first key), then drop the old key. The database never sees a key, and a
database dump alone reads no token.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from dataclasses import dataclass
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from schema.exceptions import MetricloomError

VERSION = "v1"
_KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


class TokenKeyError(MetricloomError):
    """A token cannot be sealed or opened: no key configured, an unknown key id, a token
    that is not sealed, or one that was changed or moved to another row."""


def new_key() -> str:
    """A fresh 256-bit key, base64 (what ``scripts/secrets.sh`` writes for the cluster)."""
    return base64.b64encode(os.urandom(32)).decode("ascii")


def _context(organization_id: str, connection_id: UUID) -> bytes:
    return f"{organization_id}\x00{connection_id}".encode()


@dataclass(frozen=True)
class Keyring:
    """The token keys, current first (see the module docstring for the format)."""

    keys: tuple[tuple[str, bytes], ...]

    @classmethod
    def parse(cls, text: str) -> Keyring:
        """Read ``id:base64key[,id:base64key...]``; a one-line error names what is wrong
        (never the key)."""
        keys: list[tuple[str, bytes]] = []
        for n, item in enumerate(part.strip() for part in text.split(",") if part.strip()):
            key_id, sep, encoded = item.partition(":")
            if not sep or not _KEY_ID.match(key_id):
                raise TokenKeyError(
                    f"METRICLOOM_TOKEN_KEYS entry {n + 1}: expected id:base64key with an id"
                    " of letters, digits, '-' or '_'"
                )
            try:
                key = base64.b64decode(encoded, validate=True)
            except binascii.Error:
                raise TokenKeyError(f"METRICLOOM_TOKEN_KEYS key {key_id!r} is not base64") from None
            if len(key) != 32:
                raise TokenKeyError(
                    f"METRICLOOM_TOKEN_KEYS key {key_id!r} is {len(key)} bytes, not 32"
                )
            if any(key_id == seen for seen, _ in keys):
                raise TokenKeyError(f"METRICLOOM_TOKEN_KEYS names key {key_id!r} twice")
            keys.append((key_id, key))
        if not keys:
            raise TokenKeyError("METRICLOOM_TOKEN_KEYS holds no key")
        return cls(tuple(keys))

    @property
    def current(self) -> str:
        """The id of the key that seals."""
        return self.keys[0][0]

    def seal(self, token: str, organization_id: str, connection_id: UUID) -> str:
        """The token, encrypted for its row with the current key."""
        key_id, key = self.keys[0]
        nonce = os.urandom(12)
        sealed = AESGCM(key).encrypt(
            nonce, token.encode(), _context(organization_id, connection_id)
        )
        return f"{VERSION}:{key_id}:{base64.urlsafe_b64encode(nonce + sealed).decode('ascii')}"

    def open(self, stored: str, organization_id: str, connection_id: UUID) -> str:
        """The token a stored value holds, if it was sealed for this row by a known key."""
        version, key_id, body = _parts(stored)
        if version != VERSION:
            raise TokenKeyError(
                f"the token of connection {connection_id} is not encrypted"
                " (run `metricloom tokens rotate` to encrypt stored tokens)"
            )
        key = dict(self.keys).get(key_id)
        if key is None:
            raise TokenKeyError(
                f"the token of connection {connection_id} was sealed with key {key_id!r},"
                " which METRICLOOM_TOKEN_KEYS no longer holds"
            )
        try:
            raw = base64.urlsafe_b64decode(body)
            token = AESGCM(key).decrypt(
                raw[:12], raw[12:], _context(organization_id, connection_id)
            )
        except (binascii.Error, ValueError, InvalidTag):
            raise TokenKeyError(
                f"the token of connection {connection_id} does not open for its row"
                " (changed, or copied from another connection)"
            ) from None
        return token.decode()

    def sealed_with_current(self, stored: str) -> bool:
        """Whether a stored value is already sealed with the current key."""
        version, key_id, _ = _parts(stored)
        return version == VERSION and key_id == self.current


def _parts(stored: str) -> tuple[str, str, str]:
    version, _, rest = stored.partition(":")
    key_id, _, body = rest.partition(":")
    if version != VERSION or not key_id or not body:
        return "", "", ""
    return version, key_id, body
