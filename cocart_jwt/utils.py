"""Small helpers shared by the views, the authentication class and the models."""

from __future__ import annotations

import hashlib
import ipaddress
import logging
from datetime import datetime
from functools import lru_cache
from typing import Any

from django.utils import timezone

from .settings import jwt_settings

USER_AGENT_MAX_LENGTH = 255


def now() -> datetime:
    """The clock of this app; one seam for tests."""
    return timezone.now()


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def parse_ip(value: str | None) -> str | None:
    """A normalised IP address, or None for anything else."""
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


@lru_cache(maxsize=32)
def _networks(
    proxies: tuple[str, ...],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(proxy, strict=False) for proxy in proxies)


def _is_trusted(address: str | None, proxies: tuple[str, ...]) -> bool:
    if address is None or not proxies:
        return False
    ip = ipaddress.ip_address(address)
    return any(ip in network for network in _networks(proxies))


def client_ip(request: Any) -> str | None:
    """REMOTE_ADDR, or the nearest untrusted hop of X-Forwarded-For behind trusted proxies."""
    meta = request.META
    address = parse_ip(meta.get("REMOTE_ADDR"))
    proxies = tuple(jwt_settings.TRUSTED_PROXIES)
    if not _is_trusted(address, proxies):
        return address
    for hop in reversed(meta.get("HTTP_X_FORWARDED_FOR", "").split(",")):
        hop_ip = parse_ip(hop)
        if hop_ip is None:
            return address
        if not _is_trusted(hop_ip, proxies):
            return hop_ip
        address = hop_ip
    return address


NO_STORE = "no-store, no-cache, must-revalidate, private, max-age=0"


def no_store(response: Any) -> Any:
    """A page that carries a token or a login link: never cached, anywhere."""
    response["Cache-Control"] = NO_STORE
    response["Pragma"] = "no-cache"
    return response


def user_agent(request: Any) -> str:
    return str(request.META.get("HTTP_USER_AGENT", ""))[:USER_AGENT_MAX_LENGTH]


class OutageLog:
    """Logs that a shared service failed once, and that it is back once: not per request."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.failing = False

    def failed(self, exc: Exception, consequence: str) -> None:
        if not self.failing:
            self.failing = True
            logging.getLogger("cocart_jwt").error(
                "%s unavailable (%s); %s", self.what, type(exc).__name__, consequence
            )

    def ok(self) -> None:
        if self.failing:
            self.failing = False
            logging.getLogger("cocart_jwt").warning("%s is back", self.what)
