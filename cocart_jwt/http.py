"""What this app reads from a request and writes on a response, whatever the view.

The client's address (behind the site's trusted proxies), what that address counts as in a
rate limit, the user agent as stored, and the one ``no_store`` of every page or answer that
carries a token, a login link or a refusal of one.
"""

from __future__ import annotations

import ipaddress
import logging
from functools import lru_cache
from typing import Any

from .settings import jwt_settings

logger = logging.getLogger("cocart_jwt")

USER_AGENT_MAX_LENGTH = 255
# In TRUSTED_PROXIES: the peer on a unix socket, whose REMOTE_ADDR is empty.
UNIX_SOCKET_PROXY = "unix"
IPV6_PREFIX_DEFAULT = 64
# RFC 6749 5.1 for a token response; Pragma for HTTP/1.0 caches. Django's never_cache (the
# admin's views, the login link page) adds its own directives to these.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def no_store(response: Any) -> Any:
    """A response that carries a token, a login link or a refusal: never cached, anywhere."""
    for header, value in NO_STORE.items():
        response[header] = value
    return response


def user_agent(request: Any) -> str:
    return str(request.META.get("HTTP_USER_AGENT", ""))[:USER_AGENT_MAX_LENGTH]


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
