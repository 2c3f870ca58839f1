"""Client secrets are stored as salted scrypt hashes and checked in constant time."""

from __future__ import annotations

from gateway.auth.client_secrets import hash_secret, new_secret, verify_secret


def test_hash_verifies_only_the_same_secret() -> None:
    secret = new_secret()
    stored = hash_secret(secret)
    assert secret not in stored
    assert stored.startswith("scrypt$16384$8$1$")
    assert verify_secret(secret, stored)
    assert not verify_secret(secret + "x", stored)


def test_salts_differ_between_hashes() -> None:
    assert hash_secret("same") != hash_secret("same")


def test_malformed_or_missing_hashes_never_verify() -> None:
    for stored in (None, "", "plain", "bcrypt$1$2$3$4$5", "scrypt$x$8$1$AA$AA"):
        assert not verify_secret("anything", stored)


def test_new_secrets_are_long_and_unique() -> None:
    a, b = new_secret(), new_secret()
    assert a != b and len(a) >= 43
