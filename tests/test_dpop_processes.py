"""DPoP replay across processes: a proof accepted by one process is refused by every other.

Two verifier processes (A and B) run ``verify_proof`` with ``tests.settings``, so they share the
test Redis (same URL, db and key prefix) with the test process. Each reads a proof per line
on its standard input and answers ``accepted`` or the refusal's reason. Needs Redis: skipped
without it locally, a failed run under CI (tests/conftest.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from cocart_jwt.dpop import verify_proof
from tests.dpop_clients import PATH, proof, request

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parent.parent
VERIFIER = f"""
import sys

import django

django.setup()

from django.test import RequestFactory

from cocart_jwt.dpop import InvalidDPoPProof, verify_proof

print("ready", flush=True)
for line in sys.stdin:
    try:
        verify_proof(RequestFactory().get({PATH!r}, HTTP_DPOP=line.strip()))
    except InvalidDPoPProof as exc:
        print(exc, flush=True)
    else:
        print("accepted", flush=True)
"""


class Verifier:
    def __init__(self) -> None:
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and script
            [sys.executable, "-c", VERIFIER],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.read() == "ready"

    @property
    def stdin(self) -> IO[str]:
        assert self.process.stdin is not None
        return self.process.stdin

    def send(self, value: str) -> None:
        self.stdin.write(value + "\n")
        self.stdin.flush()

    def read(self) -> str:
        assert self.process.stdout is not None
        return self.process.stdout.readline().strip()

    def verify(self, value: str) -> str:
        self.send(value)
        return self.read()

    def stop(self) -> None:
        self.stdin.close()
        self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def verifiers() -> Iterator[tuple[Verifier, Verifier]]:
    started: list[Verifier] = []
    try:
        started = [Verifier(), Verifier()]
        yield started[0], started[1]
    finally:
        for verifier in started:
            verifier.stop()


REPLAYED = "jti already used with this key (a replayed proof)"


def test_a_proof_accepted_by_one_process_is_refused_by_the_other(
    verifiers: tuple[Verifier, Verifier],
) -> None:
    a, b = verifiers
    value = proof()

    assert a.verify(value) == "accepted"
    assert b.verify(value) == REPLAYED
    assert a.verify(value) == REPLAYED


def test_a_proof_accepted_by_the_test_process_is_refused_by_both(
    verifiers: tuple[Verifier, Verifier],
) -> None:
    value = proof()
    assert verify_proof(request(value))

    assert [verifier.verify(value) for verifier in verifiers] == [REPLAYED, REPLAYED]


def test_of_two_processes_racing_with_one_proof_exactly_one_accepts(
    verifiers: tuple[Verifier, Verifier],
) -> None:
    for _ in range(20):
        value = proof()
        for verifier in verifiers:  # both have it before either answers
            verifier.send(value)

        answers = sorted(verifier.read() for verifier in verifiers)

        assert answers == ["accepted", REPLAYED]
