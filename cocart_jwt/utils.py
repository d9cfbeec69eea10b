"""Small generic helpers: the app's clock, a hash, an outage logger. Nothing of the package.

Migrations import ``now`` from here (the default of ``created_at``): it stays.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime

from django.utils import timezone


def now() -> datetime:
    """The clock of this app; one seam for tests."""
    return timezone.now()


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


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
