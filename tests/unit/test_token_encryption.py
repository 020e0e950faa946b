"""Tokens sealed for their row: what opens, what does not, and what the setting accepts."""

from __future__ import annotations

import base64
import uuid

import pytest

from schema.token_encryption import Keyring, TokenKeyError, new_key

ORG = "acme"
ROW = uuid.uuid4()


def test_a_sealed_token_opens_for_its_row_and_holds_no_plain_text() -> None:
    ring = Keyring.parse(f"k1:{new_key()}")
    sealed = ring.seal("ghp_secret-token", ORG, ROW)
    assert "ghp_secret-token" not in sealed and sealed.startswith("v1:k1:")
    assert ring.open(sealed, ORG, ROW) == "ghp_secret-token"
    assert ring.seal("ghp_secret-token", ORG, ROW) != sealed  # a fresh nonce each time


def test_a_token_moved_to_another_row_or_organisation_does_not_open() -> None:
    ring = Keyring.parse(f"k1:{new_key()}")
    sealed = ring.seal("t", ORG, ROW)
    with pytest.raises(TokenKeyError, match="does not open for its row"):
        ring.open(sealed, "other-org", ROW)
    with pytest.raises(TokenKeyError, match="does not open for its row"):
        ring.open(sealed, ORG, uuid.uuid4())


def test_a_changed_byte_is_refused() -> None:
    ring = Keyring.parse(f"k1:{new_key()}")
    version, key_id, body = ring.seal("t", ORG, ROW).split(":")
    raw = bytearray(base64.urlsafe_b64decode(body))
    raw[-1] ^= 1
    tampered = f"{version}:{key_id}:{base64.urlsafe_b64encode(bytes(raw)).decode()}"
    with pytest.raises(TokenKeyError, match="does not open"):
        ring.open(tampered, ORG, ROW)


def test_older_keys_open_and_only_the_first_seals() -> None:
    old_key, new = new_key(), new_key()
    sealed_before = Keyring.parse(f"old:{old_key}").seal("t", ORG, ROW)
    ring = Keyring.parse(f"new:{new},old:{old_key}")
    assert ring.open(sealed_before, ORG, ROW) == "t"
    assert not ring.sealed_with_current(sealed_before)
    assert ring.sealed_with_current(ring.seal("t", ORG, ROW))
    with pytest.raises(TokenKeyError, match="no longer holds"):
        Keyring.parse(f"new:{new}").open(sealed_before, ORG, ROW)


def test_plain_text_is_not_taken_for_a_token() -> None:
    with pytest.raises(TokenKeyError, match="not encrypted"):
        Keyring.parse(f"k1:{new_key()}").open("ghp_plain", ORG, ROW)


@pytest.mark.parametrize(
    ("setting", "error"),
    [
        ("", "holds no key"),
        ("nokey", "expected id:base64key"),
        ("bad id:" + new_key(), "expected id:base64key"),
        ("k1:not base64!", "is not base64"),
        ("k1:" + base64.b64encode(b"short").decode(), "is 5 bytes, not 32"),
        (f"k1:{new_key()},k1:{new_key()}", "names key 'k1' twice"),
    ],
)
def test_bad_key_settings_are_one_line_errors(setting: str, error: str) -> None:
    with pytest.raises(TokenKeyError, match=error) as caught:
        Keyring.parse(setting)
    assert "\n" not in str(caught.value)
