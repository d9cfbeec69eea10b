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


# In TRUSTED_PROXIES: the peer on a unix socket, whose REMOTE_ADDR is empty.
UNIX_SOCKET_PROXY = "unix"
IPV6_PREFIX_DEFAULT = 64

logger = logging.getLogger("cocart_jwt")


@lru_cache(maxsize=32)
def _networks(
    proxies: tuple[str, ...],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(
        ipaddress.ip_network(proxy, strict=False) for proxy in proxies if proxy != UNIX_SOCKET_PROXY
    )


def _is_trusted(address: str | None, proxies: tuple[str, ...]) -> bool:
    if address is None or not proxies:
        return False
    ip = ipaddress.ip_address(address)
    return any(ip in network for network in _networks(proxies))


class _UnixPeerWarning:
    """An empty REMOTE_ADDR without "unix" trusted: said once per process, not per request."""

    said = False

    def say(self) -> None:
        if not self.said:
            self.said = True
            logger.warning(
                "REMOTE_ADDR is empty (a proxy on a unix socket?): all such clients share "
                "one rate-limit count and no client IP is recorded. If the proxy connects "
                'over a unix socket, set COCART_JWT TRUSTED_PROXIES = ["unix"] so the client '
                "IP is read from X-Forwarded-For."
            )


unix_peer_warning = _UnixPeerWarning()


def client_ip(request: Any) -> str | None:
    """REMOTE_ADDR, or the nearest untrusted hop of X-Forwarded-For behind trusted proxies.

    An empty REMOTE_ADDR is a peer on a unix socket: a trusted proxy hop when
    TRUSTED_PROXIES names "unix", otherwise no address (and a warning, once).
    """
    meta = request.META
    proxies = tuple(jwt_settings.TRUSTED_PROXIES)
    remote = str(meta.get("REMOTE_ADDR") or "").strip()
    address = parse_ip(remote)
    if not remote:
        if UNIX_SOCKET_PROXY not in proxies:
            unix_peer_warning.say()
            return None
    elif not _is_trusted(address, proxies):
        return address
    for hop in reversed(meta.get("HTTP_X_FORWARDED_FOR", "").split(",")):
        hop_ip = parse_ip(hop)
        if hop_ip is None:
            return address
        if not _is_trusted(hop_ip, proxies):
            return hop_ip
        address = hop_ip
    return address


def valid_ipv6_prefix(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 128


def rate_limit_address(address: str) -> str:
    """What a client IP counts as in rate limits: an IPv6 client per network, not per address.

    One IPv6 host is usually handed a whole /64 and can pick a fresh address per request, so
    counting per address would give it 2**64 buckets. An IPv4-mapped IPv6 address is the
    IPv4 client it maps. Anything that is not an IP ("unknown") is returned as it is.
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv4Address):
        return str(ip)
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    prefix = jwt_settings.RATE_LIMIT_IPV6_PREFIX
    if not valid_ipv6_prefix(prefix):  # cocart_jwt.E015 reports it; count per /64 meanwhile
        prefix = IPV6_PREFIX_DEFAULT
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


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
