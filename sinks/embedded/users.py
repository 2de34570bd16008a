"""Users of the embedded store and how a request proves who it is.

A full-access user and an optional read-only one (ClickHouse's ``readonly=1``:
SELECT only, no setting changes), configured from the environment.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import Message

from watchkeeper.sinks.embedded.errors import StoreError


@dataclass(frozen=True)
class StoreUser:
    """A user of the store: its password and whether it may only read.

    >>> StoreUser("s3cret", readonly=True)
    StoreUser(readonly=True)
    """

    password: str = field(repr=False)
    readonly: bool = False


def users_from_env(environ: Mapping[str, str] | None = None) -> dict[str, StoreUser]:
    """Users from ``WATCHKEEPER_STORE_USER``/``_PASSWORD`` and ``..._READONLY_USER``/``_PASSWORD``.

    With no credentials configured, user ``default`` with an empty password has full access.

    >>> users_from_env({})
    {'default': StoreUser(readonly=False)}
    >>> env = {"WATCHKEEPER_STORE_PASSWORD": "pw", "WATCHKEEPER_STORE_READONLY_USER": "analyst"}
    >>> users_from_env(env)
    {'default': StoreUser(readonly=False), 'analyst': StoreUser(readonly=True)}
    """
    env = os.environ if environ is None else environ
    users: dict[str, StoreUser] = {}
    full_user, full_password = env.get("WATCHKEEPER_STORE_USER"), env.get("WATCHKEEPER_STORE_PASSWORD")
    if full_user or full_password:
        users[full_user or "default"] = StoreUser(full_password or "")
    ro_user, ro_password = (
        env.get("WATCHKEEPER_STORE_READONLY_USER"),
        env.get("WATCHKEEPER_STORE_READONLY_PASSWORD"),
    )
    if ro_user or ro_password:
        name = ro_user or "readonly"
        if name in users:
            raise ValueError(f"WATCHKEEPER_STORE_READONLY_USER={name!r} is also the full-access user")
        users[name] = StoreUser(ro_password or "", readonly=True)
    if not users:
        users["default"] = StoreUser("")
    return users


def authenticate(headers: Message, args: Mapping[str, str], users: Mapping[str, StoreUser]) -> StoreUser:
    """Credentials from Basic auth, X-ClickHouse-User/Key headers or user/password URL parameters.

    >>> users = {"default": StoreUser("pw")}
    >>> authenticate(Message(), {"password": "pw"}, users)
    StoreUser(readonly=False)
    >>> authenticate(Message(), {"user": "nobody"}, users)  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    StoreError: nobody: Authentication failed: ...
    """
    authorization = headers.get("Authorization", "")
    if authorization.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise StoreError(516, "Authentication failed: malformed Authorization header") from None
        name, _, password = decoded.partition(":")
    elif headers.get("X-ClickHouse-User"):
        name, password = headers["X-ClickHouse-User"], headers.get("X-ClickHouse-Key", "")
    else:
        name, password = args.get("user") or "default", args.get("password", "")
    user = users.get(name)
    # Compare even for unknown users so that timing does not reveal which names exist.
    expected = user.password if user is not None else "\0unknown user"
    if not hmac.compare_digest(password.encode(), expected.encode()) or user is None:
        raise StoreError(
            516,
            f"{name}: Authentication failed: password is incorrect, or there is no user with such name",
        )
    return user
