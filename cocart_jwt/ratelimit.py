"""Rate limit strings: ``"5/min"`` is five requests per sixty seconds."""

from __future__ import annotations

UNITS = {
    **dict.fromkeys(("s", "sec", "second", "seconds"), 1),
    **dict.fromkeys(("m", "min", "minute", "minutes"), 60),
    **dict.fromkeys(("h", "hour", "hours"), 3600),
    **dict.fromkeys(("d", "day", "days"), 86400),
}
RATE_NAMES = frozenset({"login", "refresh", "validate", "login_link"})


def parse_rate(rate: str) -> tuple[int, int]:
    """``"10/min"`` -> ``(10, 60)``; ``"100/5m"`` -> ``(100, 300)``. Raise ValueError otherwise."""
    if not isinstance(rate, str):
        raise ValueError("a rate is a string such as '5/min'")
    count_text, sep, period = rate.strip().partition("/")
    multiplier_text = period.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = period[len(multiplier_text) :]
    if not sep or not count_text.isdigit() or unit not in UNITS:
        raise ValueError(f"{rate!r} is not a rate such as '5/min'")
    if multiplier_text and not multiplier_text.isdigit():
        raise ValueError(f"{rate!r} is not a rate such as '5/min'")
    count, multiplier = int(count_text), int(multiplier_text or 1)
    if count < 1 or multiplier < 1:
        raise ValueError(f"{rate!r} must allow at least one request per period")
    return count, multiplier * UNITS[unit]
