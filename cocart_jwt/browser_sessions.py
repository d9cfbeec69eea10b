"""The Django sessions that login links start: their keys sealed at rest, and ending them.

A login link signs its user into the site's Django session (the admin, say). That session
belongs to the registry session of the link: its key is recorded on the link, sealed, and every
revocation of the registry session deletes it through the session engine. This module imports
no model: the managers call ``end_browser_sessions`` from inside a revocation.
"""

from __future__ import annotations

import logging
import secrets
from base64 import urlsafe_b64decode, urlsafe_b64encode
from collections.abc import Iterable
from importlib import import_module
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.contrib.sessions.backends.signed_cookies import SessionStore as CookieSessionStore
from django.db import DatabaseError
from django.utils.crypto import salted_hmac

if TYPE_CHECKING:
    from django.contrib.sessions.backends.base import SessionBase

logger = logging.getLogger("cocart_jwt")

# A session key fits LoginLink.django_session_key (128) once sealed: 12 + 64 + 16 bytes in
# base64url. Django's own keys are 32 characters.
KEY_MAX_LENGTH = 64
SEAL_SALT = "cocart_jwt.login_links.django_session_key"
NONCE_BYTES = 12


def session_store() -> type[SessionBase]:
    return import_module(settings.SESSION_ENGINE).SessionStore


def revocable_browser_sessions() -> bool:
    """False when sessions live in the cookie itself (signed_cookies): no server can end one."""
    return not issubclass(session_store(), CookieSessionStore)


def end_browser_sessions(sealed: Iterable[tuple[Any, str]]) -> None:
    """Delete, through the session engine, the Django sessions of ``sealed``: pairs of a login
    link's primary key and its sealed ``django_session_key``.

    Called by ``TokenQuerySet.revoke`` inside its transaction, before the commit.
    """
    keys = [unseal(value, pk) for pk, value in sealed]
    store = session_store()()
    failed = 0
    for key in keys:
        if key is None:  # sealed under a SECRET_KEY no longer in use: cannot be found
            failed += 1
            continue
        try:
            store.delete(key)
        except DatabaseError:
            raise  # the revocation's own transaction may be broken: it fails whole
        except Exception:  # a cache outage: the revocation itself must still hold
            failed += 1
    if failed:
        logger.error(
            "Could not end %d of %d browser session(s) started by login links", failed, len(keys)
        )


# -- the Django session key at rest ------------------------------------------------------
# It is a credential (whoever holds it is signed in), so the database never holds it in clear:
# AES-GCM under a key derived from SECRET_KEY, bound to its link row. Opened with
# SECRET_KEY_FALLBACKS too, so a rotation keeps revocations working.


def _sealing_keys() -> list[bytes]:
    in_use = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return [
        salted_hmac(SEAL_SALT, b"", secret=secret, algorithm="sha256").digest() for secret in in_use
    ]


def seal(session_key: str, link_pk: Any) -> str:
    nonce = secrets.token_bytes(NONCE_BYTES)
    box = AESGCM(_sealing_keys()[0]).encrypt(nonce, session_key.encode(), str(link_pk).encode())
    return urlsafe_b64encode(nonce + box).decode("ascii")


def unseal(value: str, link_pk: Any) -> str | None:
    """The session key sealed in ``value``; None when no key in use opens it."""
    try:
        raw = urlsafe_b64decode(value.encode("ascii"))
    except ValueError:
        return None
    nonce, box = raw[:NONCE_BYTES], raw[NONCE_BYTES:]
    for key in _sealing_keys():
        try:
            return AESGCM(key).decrypt(nonce, box, str(link_pk).encode()).decode()
        except (InvalidTag, ValueError):
            continue
    return None
