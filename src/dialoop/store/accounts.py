"""Accounts, API keys and permissions: who is calling, with which role, and what they may do.

A key looks like ``dlp_<key id>_<secret>``. The key id is public (it names the key
in ``dialoop users list`` and lets the server find the row); the secret is 256
random bits, shown once when the key is made. The database keeps only a salted
scrypt hash of the secret, so a copy of the database does not let anyone in.

scrypt costs tens of milliseconds by design; paying that on every request would
cost more than the answer's first token on a small model. A key, once verified,
is remembered in memory by a SHA-256 digest of the whole key, and only the
revocation check (one indexed read) runs per request.

:class:`Permissions` is the one answer to "is this user an admin?", for the library,
the CLI and the server alike: an account's role where the user has an account,
else the ``admin_users`` setting (the local user by default).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import sqlalchemy as sa

from dialoop.errors import InvalidInputError, NotFoundError, PermissionDeniedError
from dialoop.evidence import Scope
from dialoop.store import Database
from dialoop.store.models import Account, ApiKey, utcnow

__all__ = ["ROLES", "Accounts", "Caller", "KeyInfo", "Permissions", "Role", "UserInfo",
           "check_user_name", "key_id_of"]

Role = Literal["user", "admin"]
ROLES: tuple[Role, ...] = ("user", "admin")
KEY_PREFIX = "dlp_"
_USER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@:-]{0,127}$")
_KEY = re.compile(r"^dlp_([0-9a-f]{12})_([A-Za-z0-9_-]{20,100})$")
# scrypt parameters (RFC 7914's interactive-login suggestion): 16 MiB, ~50 ms.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1


@dataclass(frozen=True)
class Caller:
    """The account a request acts for."""

    user: str
    role: Role
    key_id: str | None = None  # None: the keyless local mode

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True)
class KeyInfo:
    id: str
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True)
class UserInfo:
    user: str
    role: Role
    created_at: datetime
    keys: list[KeyInfo]

    @property
    def active_keys(self) -> list[KeyInfo]:
        return [k for k in self.keys if k.revoked_at is None]


class Accounts:
    """Add users and keys, verify keys, revoke them. Thread-safe."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._verified: dict[str, str] = {}  # sha256(key) -> key id, for keys scrypt accepted
        self._lock = threading.Lock()

    def add_key(self, user: str, role: Role = "user") -> tuple[KeyInfo, str]:
        """Issue a new key for ``user`` (created with ``role`` if new); return it and the key.

        The key itself is returned only here: it cannot be recovered later.
        """
        check_user_name(user)
        if role not in ROLES:
            raise InvalidInputError(f"A role is 'user' or 'admin', not {role!r}.")
        key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        with self.db.write() as s:
            account = s.get(Account, user)
            if account is None:
                s.add(Account(user_id=user, role=role, created_at=utcnow()))
            elif account.role != role:
                raise InvalidInputError(
                    f"{user} already exists with the role {account.role!r}; to change it, "
                    f"revoke their keys (`dialoop users revoke {user} --delete`) and add them "
                    "again."
                )
            row = ApiKey(id=key_id, user_id=user, secret_hash=_hash(secret), created_at=utcnow())
            s.add(row)
        return KeyInfo(row.id, row.created_at, None), f"{KEY_PREFIX}{key_id}_{secret}"

    def verify(self, key: str, *, known_only: bool = False) -> Caller | None:
        """The caller ``key`` belongs to, or None if it is unknown, malformed or revoked.

        With ``known_only``, None also for a key not verified before: no scrypt, so a
        server can answer known keys at once and rate-limit the others before checking.
        """
        match = _KEY.match(key.strip())
        if match is None:
            return None
        key_id, secret = match.groups()
        with self.db.read() as s:
            found = s.execute(
                sa.select(ApiKey, Account.role)
                .join(Account, Account.user_id == ApiKey.user_id)
                .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
            ).first()
        if found is None:
            return None
        row, role = found
        digest = hashlib.sha256(key.strip().encode()).hexdigest()
        with self._lock:
            known = self._verified.get(digest) == key_id
        if not known:
            if known_only or not _check(secret, row.secret_hash):
                return None
            with self._lock:
                self._verified[digest] = key_id
        return Caller(row.user_id, role, key_id)

    def any_active(self, *, revoked_since: datetime | None = None) -> bool:
        """Whether any key can be used (then the server requires one); with
        ``revoked_since``, also whether a key was revoked since then (so was usable)."""
        usable = ApiKey.revoked_at.is_(None)
        if revoked_since is not None:
            usable = sa.or_(usable, ApiKey.revoked_at >= revoked_since)
        with self.db.read() as s:
            return bool(s.scalar(sa.select(sa.exists().where(usable))))

    def list(self) -> list[UserInfo]:
        with self.db.read() as s:
            accounts = list(s.scalars(sa.select(Account).order_by(Account.user_id)))
            keys = list(s.scalars(sa.select(ApiKey).order_by(ApiKey.created_at)))
        by_user: dict[str, list[KeyInfo]] = {}
        for k in keys:
            by_user.setdefault(k.user_id, []).append(KeyInfo(k.id, k.created_at, k.revoked_at))
        return [UserInfo(a.user_id, a.role, a.created_at, by_user.get(a.user_id, []))  # type: ignore[arg-type]
                for a in accounts]

    def revoke(self, ref: str, *, delete: bool = False) -> list[str]:
        """Revoke the key with id ``ref``, or every key of the user ``ref``; return key ids.

        With ``delete`` (a user only) the account is removed too. The user's sessions
        and lessons stay: they belong to the user name, not to the key.
        """
        now = utcnow()
        with self.db.write() as s:
            if s.get(Account, ref) is not None:
                rows = list(s.scalars(sa.select(ApiKey).where(ApiKey.user_id == ref)))
                if delete:
                    s.execute(sa.delete(ApiKey).where(ApiKey.user_id == ref))
                    s.execute(sa.delete(Account).where(Account.user_id == ref))
            elif (key := s.get(ApiKey, ref.removeprefix(KEY_PREFIX))) is not None:
                if delete:
                    raise InvalidInputError("--delete takes a user name, not a key id.")
                rows = [key]
            else:
                raise NotFoundError(
                    f"No user or key {ref!r}: `dialoop users list` shows them."
                )
            revoked = [r.id for r in rows if r.revoked_at is None]
            for r in rows:
                if not delete and r.revoked_at is None:
                    r.revoked_at = now
        return revoked


class Permissions:
    """Who is an admin, and what that allows. The one check used by every caller."""

    def __init__(self, db: Database, admin_users: Sequence[str]) -> None:
        self.db = db
        self.admin_users = frozenset(admin_users)

    def role(self, user: str) -> Role:
        """The account's role; a user without an account is an admin when named in
        ``admin_users``."""
        with self.db.read() as s:
            role = s.scalar(sa.select(Account.role).where(Account.user_id == user))
        if role is not None:
            return role  # type: ignore[no-any-return]
        return "admin" if user in self.admin_users else "user"

    def is_admin(self, user: str) -> bool:
        return self.role(user) == "admin"

    def require_admin(self, user: str, doing: str) -> None:
        """Raise :class:`PermissionDeniedError` unless ``user`` is an admin."""
        if not self.is_admin(user):
            raise PermissionDeniedError(f"Only an admin may {doing}, and {user} is not one.")

    def check_scope(self, user: str, scope: Scope, doing: str) -> None:
        """``user`` may act in ``scope``: their own, or (admins) everyone's or anyone's."""
        if scope.user == user:
            return
        self.require_admin(user, f"{doing} for everyone (scope global)" if scope.is_global
                           else f"{doing} for another user")


def check_user_name(user: str) -> None:
    if not _USER.fullmatch(user):  # not match: "$" also matches before a final newline
        raise InvalidInputError(
            f"Invalid user name {user!r}: use 1 to 128 letters, digits and . _ @ : - "
            "(starting with a letter or digit)."
        )


def key_id_of(key: str) -> str | None:
    """The public id in a well-formed key (``dlp_<id>_<secret>``), else None."""
    match = _KEY.match(key.strip())
    return match.group(1) if match else None


def _hash(secret: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P,
                            dklen=32)
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${salt.hex()}${digest.hex()}"


def _check(secret: str, stored: str) -> bool:
    scheme, n, r, p, salt, digest = stored.split("$")
    assert scheme == "scrypt", f"unknown key hash scheme {scheme!r}"
    computed = hashlib.scrypt(secret.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r),
                              p=int(p), dklen=len(digest) // 2)
    return hmac.compare_digest(computed.hex(), digest)
