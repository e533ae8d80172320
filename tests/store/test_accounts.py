"""API keys: stored hashed, verified, revoked; bad input changes nothing."""

from __future__ import annotations

import pytest

from dialoop.config import Settings
from dialoop.errors import InvalidInputError, NotFoundError
from dialoop.store import Database, open_database
from dialoop.store.accounts import Accounts


@pytest.fixture
def db(settings: Settings):  # type: ignore[no-untyped-def]
    database = open_database(settings.resolved_database_url)
    yield database
    database.close()


@pytest.fixture
def accounts(db: Database) -> Accounts:
    return Accounts(db)


def test_a_key_identifies_its_user_and_role(accounts: Accounts) -> None:
    info, key = accounts.add_key("ann")
    _, admin_key = accounts.add_key("root", "admin")
    caller = accounts.verify(key)
    assert caller is not None and (caller.user, caller.role, caller.key_id) == (
        "ann", "user", info.id)
    assert accounts.verify(admin_key).is_admin  # type: ignore[union-attr]
    assert accounts.any_active()


def test_only_a_hash_of_the_key_is_stored(accounts: Accounts, settings: Settings) -> None:
    _, key = accounts.add_key("ann")
    secret = key.split("_", 2)[2]
    raw = b"".join(p.read_bytes() for p in settings.home.glob("dialoop.db*"))
    assert secret.encode() not in raw
    assert accounts.verify(key.replace(secret, secret[:-1] + ("A" if secret[-1] != "A" else "B"))
                           ) is None


@pytest.mark.parametrize("key", ["", "dlp_", "sk-123", "dlp_zzzzzzzzzzzz_" + "a" * 43,
                                 "dlp_0123456789ab_" + "a" * 43])
def test_malformed_or_unknown_keys_are_refused(accounts: Accounts, key: str) -> None:
    accounts.add_key("ann")
    assert accounts.verify(key) is None


def test_revoke_one_key_or_all_of_a_user(accounts: Accounts) -> None:
    first, key1 = accounts.add_key("ann")
    _, key2 = accounts.add_key("ann")
    assert accounts.revoke(first.id) == [first.id]
    assert accounts.verify(key1) is None and accounts.verify(key2) is not None
    assert len(accounts.revoke("ann")) == 1
    assert accounts.verify(key2) is None
    assert not accounts.any_active()
    assert [len(u.active_keys) for u in accounts.list()] == [0]
    with pytest.raises(NotFoundError):
        accounts.revoke("nobody")


def test_bad_input_stores_nothing(accounts: Accounts) -> None:
    with pytest.raises(InvalidInputError, match="Invalid user name"):
        accounts.add_key("ann smith")
    with pytest.raises(InvalidInputError, match="role"):
        accounts.add_key("ann", "superuser")  # type: ignore[arg-type]
    assert accounts.list() == []
    accounts.add_key("ann")
    with pytest.raises(InvalidInputError, match="already exists with the role 'user'"):
        accounts.add_key("ann", "admin")
    assert [len(u.keys) for u in accounts.list()] == [1]
