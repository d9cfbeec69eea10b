"""Server processes for tests that need real HTTP and several processes.

A ``ServerProcess`` runs ``runserver`` (one process) or gunicorn (several workers) on a free
port with ``tests.settings``, sharing the pytest test database (``COCART_JWT_TEST_DB_NAME``)
and taking extra ``COCART_JWT`` settings as ``COCART_JWT_TEST_OVERRIDES``. Its output goes to
a temporary file, kept until ``remove_log()`` so a failing test can show it.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from importlib import import_module
from pathlib import Path
from typing import Any

import requests
from django.urls import URLPattern, URLResolver, reverse
from django.urls.resolvers import RoutePattern

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 30.0
# Every request of a test comes from 127.0.0.1: servers must not rate-limit the tests.
NO_RATE_LIMITS = {"RATE_LIMITS": {"login": None, "refresh": None, "validate": None}}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    def __init__(
        self,
        name: str,
        db_name: str,
        overrides: dict[str, Any],
        workers: int = 0,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """``workers`` 0: ``runserver --noreload --nothreading``; above 0: gunicorn. ``env``
        adds to (or replaces) the test process's environment, e.g. another ``DATABASE_URL``."""
        self.name = name
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in stop()
            prefix=f"cocart_jwt_server_{name}_", suffix=".log", delete=False
        )
        env = {  # DATABASE_URL / REDIS_URL pass through when set
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "COCART_JWT_TEST_DB_NAME": db_name,
            "COCART_JWT_TEST_OVERRIDES": json.dumps(overrides),
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        address = f"127.0.0.1:{self.port}"
        if workers:
            command = ["-m", "gunicorn", "tests.wsgi", "--workers", str(workers), "-b", address]
        else:
            command = ["-m", "django", "runserver", "--noreload", "--nothreading", address]
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            [sys.executable, *command],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    def wait_until_up(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"server {self.name} exited with {self.process.returncode}:\n{self.output()}"
                )
            try:
                requests.get(self.url("/api/auth/jwks.json"), timeout=5)
                return
            except requests.RequestException:
                time.sleep(0.1)
        raise RuntimeError(
            f"server {self.name} did not answer in {START_TIMEOUT} s:\n{self.output()}"
        )

    def output(self, since: int = 0) -> str:
        with open(self.log.name, "rb") as log:
            log.seek(since)
            return log.read().decode(errors="replace")

    def size(self) -> int:
        return Path(self.log.name).stat().st_size

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.log.close()

    def remove_log(self) -> None:
        Path(self.log.name).unlink(missing_ok=True)


def endpoints(urlconf: str, samples: Mapping[str, str]) -> list[dict[str, Any]]:
    """Every URL pattern of ``urlconf`` (a module the root URLconf includes under its
    ``app_name``): ``{"name", "url", "methods"}``, the URL reversed with sample arguments and
    the HTTP methods its view answers. Read from the resolver, so a test over this list covers
    a new endpoint without being told.

    An argument takes the sample of its name, else the first sample its path converter
    accepts; one that none fits, or a pattern without a name, is an error to fix in the test.
    """
    module = import_module(urlconf)
    found: list[dict[str, Any]] = []
    _walk(module.urlpatterns, module.app_name, samples, found)
    return found


def _walk(
    patterns: Sequence[URLPattern | URLResolver],
    namespace: str,
    samples: Mapping[str, str],
    found: list[dict[str, Any]],
) -> None:
    for entry in patterns:
        if isinstance(entry, URLResolver):
            inner = f"{namespace}:{entry.namespace}" if entry.namespace else namespace
            _walk(entry.url_patterns, inner, samples, found)
            continue
        if not entry.name:
            raise ValueError(f"{namespace}: the pattern {entry.pattern} has no name")
        kwargs = {name: _sample(entry, name, samples) for name in _argument_names(entry)}
        url = reverse(f"{namespace}:{entry.name}", kwargs=kwargs)
        found.append({"name": entry.name, "url": url, "methods": _view_methods(entry.callback)})


def _argument_names(entry: URLPattern) -> list[str]:
    pattern = entry.pattern
    if isinstance(pattern, RoutePattern):  # path()
        return list(pattern.converters)
    return list(pattern.regex.groupindex)  # re_path(), as DRF's routers make by default


def _sample(entry: URLPattern, name: str, samples: Mapping[str, str]) -> str:
    if name in samples:
        return samples[name]
    if isinstance(entry.pattern, RoutePattern):
        regex = entry.pattern.converters[name].regex
        for value in samples.values():
            if re.fullmatch(regex, value):
                return value
    raise ValueError(f"{entry.name}: no sample value fits the argument {name!r}")


def _view_methods(callback: Callable[..., Any]) -> list[str]:
    """The methods a view answers (``options`` and ``head`` aside)."""
    actions = getattr(callback, "actions", None)  # a DRF ViewSet: method -> action
    if actions:
        return sorted(actions)
    view_class = getattr(callback, "view_class", None) or getattr(callback, "cls", None)
    if view_class is None:
        return ["get", "post", "put", "patch", "delete"]  # a function view: try them all
    return [
        method
        for method in view_class.http_method_names
        if method not in ("options", "head") and hasattr(view_class, method)
    ]
