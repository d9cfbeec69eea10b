"""Round trips to PostgreSQL, counted from libpq's protocol trace.

A round trip is the client waiting for the server: in the trace, a run of messages the client
sent (``F``) followed by the server's answer (``B``). Statements sent together in psycopg's
pipeline mode are one round trip; BEGIN, each separate statement and COMMIT are one each.
psycopg may also read answers it did not wait for, so the count can only be too high, never
too low: an assertion "at most N" on it is safe.

    with round_trips() as counted:
        client.post(...)
    assert counted.total <= 4
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.db import connections


@dataclass
class RoundTrips:
    total: int = 0
    messages: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.total} round trip(s):\n" + "\n".join(self.messages)


def count(lines: list[str]) -> int:
    trips, previous = 0, ""
    for line in lines:
        direction = line.split("\t", 1)[0]
        if direction == "B" and previous == "F":
            trips += 1
        previous = direction
    return trips


@contextmanager
def round_trips(using: str = "default") -> Iterator[RoundTrips]:
    """Count the round trips of connection ``using`` inside the block (PostgreSQL with
    psycopg 3 only: libpq's trace)."""
    from psycopg import pq

    connection = connections[using]
    connection.ensure_connection()
    pgconn = connection.connection.pgconn
    counted = RoundTrips()
    with tempfile.TemporaryFile("w+") as trace:
        pgconn.trace(trace.fileno())
        pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        try:
            yield counted
        finally:
            pgconn.untrace()
            trace.seek(0)
            lines = trace.read().splitlines()
            counted.messages = [line[:120] for line in lines]
            counted.total = count(lines)
