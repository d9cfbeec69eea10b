"""System check of ``SESSION_IDLE_TIMEOUT``, registered when the app is ready.

E018: ``SESSION_IDLE_TIMEOUT`` that is not None, a timedelta or a number of seconds, or that is
not above ``TOUCH_INTERVAL``. A session's ``last_used_at`` is written at most once per
``TOUCH_INTERVAL``, so a timeout at or under it would end sessions that are in use.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.checks import CheckMessage, Error, Tags, register

from .settings import jwt_settings

CHECK_ID = "cocart_jwt.E018"
HINT = (
    "Use None (the default: no idle timeout), or a timedelta or number of seconds well above "
    "TOUCH_INTERVAL (60 s by default), for example timedelta(minutes=30)."
)


@register(Tags.security, "cocart_jwt")
def check_idle_timeout(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    try:
        timeout = jwt_settings.SESSION_IDLE_TIMEOUT
    except (TypeError, ValueError, OverflowError):
        return [
            Error(
                "COCART_JWT SESSION_IDLE_TIMEOUT must be None, a timedelta or a number of seconds.",
                hint=HINT,
                id=CHECK_ID,
            )
        ]
    try:
        touch = jwt_settings.TOUCH_INTERVAL
    except (TypeError, ValueError, OverflowError):  # E005 says so
        return []
    if timeout is None or timeout > max(touch, timedelta(0)):
        return []
    return [
        Error(
            f"COCART_JWT SESSION_IDLE_TIMEOUT ({timeout.total_seconds():g} s) is not above "
            f"TOUCH_INTERVAL ({touch.total_seconds():g} s): sessions in use would time out, "
            "since their last use is written at most once per TOUCH_INTERVAL.",
            hint=HINT,
            id=CHECK_ID,
        )
    ]
