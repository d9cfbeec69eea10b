"""System check of the DPoP settings, registered when the app is ready.

E021: ``DPOP_ALGORITHMS`` that is not a non-empty list of asymmetric algorithms this app
verifies proofs with (``dpop_jose.SUPPORTED_ALGORITHMS``), or a ``DPOP_PROOF_LIFETIME`` that is
not positive (one that is no duration is E005's). At run time a name that is not supported is
ignored, so a list of such names only refuses every proof.

W012: ``CACHE`` is process-local (local memory, dummy) while ``DEBUG`` is off: a DPoP proof's
``jti`` is claimed there, so a proof replayed to another process (another gunicorn worker) is
accepted. DPoP is per client, with no switch to look at, so this warns on every such site, as
W002 does for rate limits.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from .checks import PROCESS_LOCAL_CACHES
from .dpop_jose import SUPPORTED_ALGORITHMS
from .settings import DEFAULTS, jwt_settings

CHECK_ID = "cocart_jwt.E021"
# Longer than any algorithm name: a longer value is described, not quoted.
NAME_MAX = 16
ALGORITHMS_HINT = (
    f"Use a list of some of {', '.join(SUPPORTED_ALGORITHMS)}, for example "
    f"{DEFAULTS['DPOP_ALGORITHMS']!r} (the default). DPoP proofs are signed with the client's "
    "private key: HMAC (HS256, HS384, HS512) and none cannot be used."
)
LIFETIME_HINT = (
    "Use a positive timedelta or number of seconds; the default is timedelta(seconds=60), "
    "how long a client may take between signing a proof and the server receiving it."
)


@register(Tags.security, "cocart_jwt")
def check_dpop(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    return [*check_algorithms(), *check_lifetime(), *check_replay_cache()]


def check_replay_cache() -> list[CheckMessage]:
    backend = getattr(settings, "CACHES", {}).get(jwt_settings.CACHE, {}).get("BACKEND")
    if settings.DEBUG or backend not in PROCESS_LOCAL_CACHES:
        return []
    return [
        Warning(
            "COCART_JWT CACHE is process-local: a DPoP proof replayed to another process is "
            "not recognised as a replay.",
            hint="Use a shared cache (django-redis) for CACHE in production; with a single "
            "process, local memory holds.",
            id="cocart_jwt.W012",
        )
    ]


def check_algorithms() -> list[CheckMessage]:
    algorithms = jwt_settings.DPOP_ALGORITHMS
    if not isinstance(algorithms, list | tuple) or not algorithms:
        return [
            Error(
                "COCART_JWT DPOP_ALGORITHMS must be a non-empty list of algorithm names.",
                hint=ALGORITHMS_HINT,
                id=CHECK_ID,
            )
        ]
    unsupported = [
        name
        for name in algorithms
        if not (isinstance(name, str) and name in SUPPORTED_ALGORITHMS)  # a list: unhashable
    ]
    if not unsupported:
        return []
    shown = ", ".join(_shown(name) for name in unsupported)
    return [
        Error(
            f"COCART_JWT DPOP_ALGORITHMS has {shown}: not an asymmetric algorithm that DPoP "
            "proofs can be verified with.",
            hint=ALGORITHMS_HINT,
            id=CHECK_ID,
        )
    ]


def _shown(name: Any) -> str:
    if isinstance(name, str) and len(name) <= NAME_MAX:
        return repr(name)
    return f"(a {type(name).__name__} that is no algorithm name)"


def check_lifetime() -> list[CheckMessage]:
    try:
        lifetime = jwt_settings.DPOP_PROOF_LIFETIME
    except (TypeError, ValueError, OverflowError):  # E005 says so
        return []
    if lifetime > timedelta(0):
        return []
    return [
        Error(
            f"COCART_JWT DPOP_PROOF_LIFETIME ({lifetime.total_seconds():g} s) is not positive: "
            "every DPoP proof would be refused as too old.",
            hint=LIFETIME_HINT,
            id=CHECK_ID,
        )
    ]
