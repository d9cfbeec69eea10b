"""The COCART_JWT setting: defaults, units, reloads, claim hooks, lazy reading."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from django.conf import settings as django_settings
from django.test import override_settings

import cocart_jwt.settings
from cocart_jwt.models import Token
from cocart_jwt.settings import jwt_settings
from tests.factories import bearer, login

REPO = Path(__file__).resolve().parent.parent
NO_RATE_LIMITS = {"login": None, "refresh": None, "validate": None}


def user_claims(user: Any) -> dict[str, Any]:
    return {"username": user.get_username(), "roles": ["customer"]}


def hostile_user_claims(user: Any) -> dict[str, Any]:
    return {
        "sub": "999",
        "sid": "stolen",
        "exp": 4102444800,
        "iss": "https://evil.example",
        "jti": "fixed",
        "iat": 0,
        "nbf": 0,
        "plan": "gold",
    }


def audience_user_claims(user: Any) -> dict[str, Any]:
    return {"aud": "https://other-service.example", "plan": "gold"}


def payload_hook(payload: dict[str, Any], user: Any) -> dict[str, Any]:
    return {**payload, "email": user.email, "hooked": True}


def unverified(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


def configure(settings: Any, **extra: Any) -> None:
    settings.COCART_JWT = {**settings.COCART_JWT, "RATE_LIMITS": NO_RATE_LIMITS, **extra}


def login_claims(
    api_client: Any, user: Any, password: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    response = login(api_client, user.username, password)
    assert response.status_code == 200, response.content
    body = response.json()
    return body, unverified(body["access_token"])


# --- Defaults and units --------------------------------------------------------------------


@pytest.mark.rate_limits
def test_defaults_are_the_documented_ones() -> None:
    assert jwt_settings.ALGORITHM == "HS256"
    assert jwt_settings.ACCESS_TOKEN_LIFETIME == timedelta(minutes=15)
    assert jwt_settings.REFRESH_TOKEN_LIFETIME == timedelta(days=30)
    assert jwt_settings.SESSION_MAX_LIFETIME == timedelta(days=90)
    assert jwt_settings.ADMIN_TOKEN_LIFETIME == timedelta(hours=24)
    assert jwt_settings.LOGIN_LINK_LIFETIME == timedelta(minutes=10)
    assert jwt_settings.LEEWAY == timedelta(0)
    assert jwt_settings.MAX_TOKENS_PER_USER == 10
    assert jwt_settings.ROTATE_REFRESH_TOKENS is True
    assert jwt_settings.BIND_TO_IP is False
    assert jwt_settings.BIND_TO_USER_AGENT is False
    assert jwt_settings.TOKEN_PREFIX == ""
    assert jwt_settings.USER_CLAIMS is None
    assert jwt_settings.PAYLOAD_HOOK is None
    assert set(jwt_settings.REVOKE_ON) == {
        "password_change",
        "email_change",
        "deactivation",
        "logout",
    }
    assert jwt_settings.SESSION_CACHE_TTL == timedelta(0)
    assert jwt_settings.TOUCH_INTERVAL == timedelta(seconds=60)
    assert jwt_settings.REAUTH_MAX_AGE == timedelta(minutes=5)
    assert jwt_settings.RATE_LIMITS == {
        "login": "5/min",
        "refresh": "10/min",
        "validate": "2/min",
        "login_link": "5/min",
        "reauthenticate": "5/min",
        "revoke": "10/min",
        "introspect": None,
    }
    assert jwt_settings.RATE_LIMIT_IPV6_PREFIX == 64
    assert jwt_settings.CACHE == "default"
    assert jwt_settings.RATE_LIMIT_CACHE == "default"
    assert jwt_settings.RATE_LIMIT_FAIL_OPEN is True
    assert list(jwt_settings.TRUSTED_PROXIES) == []
    assert list(jwt_settings.FALLBACK_KEYS) == []
    assert jwt_settings.KEY_ID is None
    assert jwt_settings.AUDIENCE is None


@pytest.mark.rate_limits
def test_rate_limits_are_laid_over_the_defaults(settings: Any) -> None:
    settings.COCART_JWT = {
        **settings.COCART_JWT,
        "RATE_LIMITS": {"login_username": "20/hour", "validate": None},
    }
    assert jwt_settings.RATE_LIMITS == {
        "login": "5/min",
        "refresh": "10/min",
        "validate": None,
        "login_link": "5/min",
        "reauthenticate": "5/min",
        "revoke": "10/min",
        "introspect": None,
        "login_username": "20/hour",
    }


def test_values_from_the_setting_are_read() -> None:
    assert jwt_settings.ISSUER == django_settings.COCART_JWT["ISSUER"]
    assert jwt_settings.SIGNING_KEY == django_settings.COCART_JWT["SIGNING_KEY"]


@pytest.mark.parametrize(
    ("name", "seconds"),
    [
        ("ACCESS_TOKEN_LIFETIME", 300),
        ("REFRESH_TOKEN_LIFETIME", 86400),
        ("SESSION_MAX_LIFETIME", 7 * 86400),
        ("ADMIN_TOKEN_LIFETIME", 3600),
        ("LOGIN_LINK_LIFETIME", 120),
        ("LEEWAY", 5),
        ("SESSION_CACHE_TTL", 30),
        ("TOUCH_INTERVAL", 10),
    ],
)
def test_integer_durations_are_seconds(name: str, seconds: int, settings: Any) -> None:
    settings.COCART_JWT = {**settings.COCART_JWT, name: seconds}
    assert getattr(jwt_settings, name) == timedelta(seconds=seconds)


def test_timedelta_durations_are_kept(settings: Any) -> None:
    settings.COCART_JWT = {**settings.COCART_JWT, "ACCESS_TOKEN_LIFETIME": timedelta(minutes=7)}
    assert jwt_settings.ACCESS_TOKEN_LIFETIME == timedelta(minutes=7)


def test_override_settings_changes_values_in_place_and_reverts() -> None:
    before = jwt_settings
    assert jwt_settings.ACCESS_TOKEN_LIFETIME == timedelta(minutes=15)
    with override_settings(
        COCART_JWT={
            **django_settings.COCART_JWT,
            "ACCESS_TOKEN_LIFETIME": 60,
            "MAX_TOKENS_PER_USER": 3,
        }
    ):
        assert cocart_jwt.settings.jwt_settings is before
        assert jwt_settings.ACCESS_TOKEN_LIFETIME == timedelta(seconds=60)
        assert jwt_settings.MAX_TOKENS_PER_USER == 3
    assert cocart_jwt.settings.jwt_settings is before
    assert jwt_settings.ACCESS_TOKEN_LIFETIME == timedelta(minutes=15)
    assert jwt_settings.MAX_TOKENS_PER_USER == 10


def test_settings_fixture_changes_values_and_they_revert_after_the_test(settings: Any) -> None:
    settings.COCART_JWT = {**settings.COCART_JWT, "TOUCH_INTERVAL": 5}
    assert jwt_settings.TOUCH_INTERVAL == timedelta(seconds=5)
    settings.COCART_JWT = {**settings.COCART_JWT, "TOUCH_INTERVAL": 7}
    assert jwt_settings.TOUCH_INTERVAL == timedelta(seconds=7)


def test_previous_test_setting_did_not_leak() -> None:
    assert jwt_settings.TOUCH_INTERVAL == timedelta(seconds=60)


def test_removed_setting_falls_back_to_its_default() -> None:
    with override_settings(COCART_JWT={**django_settings.COCART_JWT, "ISSUER": "https://x"}):
        assert jwt_settings.ISSUER == "https://x"
        with override_settings(
            COCART_JWT={"SIGNING_KEY": django_settings.COCART_JWT["SIGNING_KEY"]}
        ):
            assert jwt_settings.ISSUER is None
        assert jwt_settings.ISSUER == "https://x"


# --- Lifetimes in tokens -------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("lifetime", [120, timedelta(minutes=5)], ids=["int", "timedelta"])
def test_access_token_exp_follows_access_token_lifetime(
    lifetime: Any, settings: Any, api_client: Any, user: Any, password: str
) -> None:
    configure(settings, ACCESS_TOKEN_LIFETIME=lifetime)
    expected = int(lifetime.total_seconds()) if isinstance(lifetime, timedelta) else lifetime
    body, claims = login_claims(api_client, user, password)
    assert claims["exp"] - claims["iat"] == expected
    assert body["expires_in"] == expected


@pytest.mark.django_db
def test_default_access_token_lives_fifteen_minutes(
    settings: Any, api_client: Any, user: Any, password: str
) -> None:
    configure(settings)
    body, claims = login_claims(api_client, user, password)
    assert claims["exp"] - claims["iat"] == 900
    assert body["expires_in"] == 900
    assert body["refresh_expires_in"] == 30 * 86400


# --- Claims --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_user_claims_callable_adds_claims(
    settings: Any, api_client: Any, user: Any, password: str
) -> None:
    configure(settings, USER_CLAIMS="tests.test_settings.user_claims")
    body, claims = login_claims(api_client, user, password)
    assert claims["username"] == "alice"
    assert claims["roles"] == ["customer"]
    assert api_client.get("/api/me/", **bearer(body["access_token"])).status_code == 200


@pytest.mark.django_db
def test_payload_hook_adds_claims(settings: Any, api_client: Any, user: Any, password: str) -> None:
    configure(settings, PAYLOAD_HOOK="tests.test_settings.payload_hook")
    body, claims = login_claims(api_client, user, password)
    assert claims["email"] == "alice@example.com"
    assert claims["hooked"] is True
    assert claims["sub"] == str(user.pk)
    assert api_client.get("/api/me/", **bearer(body["access_token"])).status_code == 200


@pytest.mark.django_db
def test_user_claims_and_payload_hook_together(
    settings: Any, api_client: Any, user: Any, password: str
) -> None:
    configure(
        settings,
        USER_CLAIMS="tests.test_settings.user_claims",
        PAYLOAD_HOOK="tests.test_settings.payload_hook",
    )
    _body, claims = login_claims(api_client, user, password)
    assert claims["username"] == "alice"
    assert claims["hooked"] is True


@pytest.mark.django_db
def test_user_claims_cannot_override_registered_claims(
    settings: Any, api_client: Any, user: Any, password: str
) -> None:
    configure(settings, USER_CLAIMS="tests.test_settings.hostile_user_claims")
    body, claims = login_claims(api_client, user, password)
    assert claims["sub"] == str(user.pk)
    assert claims["sid"] == body["sid"]
    assert claims["iss"] == settings.COCART_JWT["ISSUER"]
    assert claims["jti"] != "fixed"
    assert claims["iat"] > 0
    assert claims["exp"] - claims["iat"] == 900
    assert claims["plan"] == "gold"
    assert api_client.get("/api/me/", **bearer(body["access_token"])).status_code == 200


@pytest.mark.django_db
def test_issue_claims_cannot_override_registered_claims(user: Any, api_client: Any) -> None:
    issued = Token.objects.issue(user, claims={"sub": "999", "sid": "x", "role": "manager"})
    claims = unverified(issued.access_token)
    assert claims["sub"] == str(user.pk)
    assert claims["sid"] == issued.session.pk
    assert claims["role"] == "manager"
    me = api_client.get("/api/me/", **bearer(issued.access_token))
    assert me.status_code == 200
    assert me.json()["sid"] == issued.session.pk


@pytest.mark.django_db
def test_issue_claims_cannot_add_an_audience_that_is_not_configured(
    settings: Any, user: Any, api_client: Any
) -> None:
    configure(settings, AUDIENCE=None)
    issued = Token.objects.issue(
        user,
        claims={
            "aud": "https://other-service.example",
            "exp": 4102444800,
            "nbf": 4102444800,
            "iss": "https://evil.example",
            "role": "manager",
        },
    )
    claims = unverified(issued.access_token)
    assert "aud" not in claims
    assert claims["iss"] == settings.COCART_JWT["ISSUER"]
    assert claims["exp"] - claims["iat"] == 900
    assert claims["nbf"] == claims["iat"]
    assert claims["role"] == "manager"
    assert api_client.get("/api/me/", **bearer(issued.access_token)).status_code == 200


@pytest.mark.django_db
def test_issue_claims_cannot_set_an_issuer_that_is_not_configured(
    settings: Any, user: Any, api_client: Any
) -> None:
    configure(settings, ISSUER=None)
    issued = Token.objects.issue(user, claims={"iss": "https://evil.example", "role": "manager"})
    claims = unverified(issued.access_token)
    assert "iss" not in claims
    assert claims["role"] == "manager"


@pytest.mark.django_db
def test_user_claims_cannot_add_an_audience_that_is_not_configured(
    settings: Any, api_client: Any, user: Any, password: str
) -> None:
    configure(settings, AUDIENCE=None, USER_CLAIMS="tests.test_settings.audience_user_claims")
    body, claims = login_claims(api_client, user, password)
    assert "aud" not in claims
    assert claims["plan"] == "gold"
    assert api_client.get("/api/me/", **bearer(body["access_token"])).status_code == 200


# --- Nothing read at import time -----------------------------------------------------------


BROKEN_SETTINGS = """
from tests.settings import *  # noqa: F403

COCART_JWT = {broken!r}
"""


@pytest.mark.parametrize(
    "broken",
    [
        {
            "ALGORITHM": "HS1024",
            "ACCESS_TOKEN_LIFETIME": "soon",
            "SIGNING_KEY": "env:UNSET_VAR_X",
            "USER_CLAIMS": "no.such.module.func",
            "PAYLOAD_HOOK": "nodots",
        },
        "not a dict",
    ],
    ids=["broken-dict", "not-a-dict"],
)
def test_fresh_process_with_broken_settings_imports_and_reports_check_errors(
    broken: Any, tmp_path: Path
) -> None:
    (tmp_path / "broken_settings.py").write_text(
        textwrap.dedent(BROKEN_SETTINGS.format(broken=broken))
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)]),
        "DJANGO_SETTINGS_MODULE": "broken_settings",
    }
    env.pop("UNSET_VAR_X", None)
    code = textwrap.dedent(
        """
        import importlib, pkgutil, sys
        import django
        django.setup()
        import cocart_jwt
        for info in pkgutil.walk_packages(cocart_jwt.__path__, "cocart_jwt."):
            importlib.import_module(info.name)
        print("IMPORTED", flush=True)
        from django.core.management import call_command
        call_command("check")
        """
    )
    result = subprocess.run(  # noqa: S603  (our own interpreter and code)
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "IMPORTED" in result.stdout, result.stderr
    assert result.returncode != 0
    assert "SystemCheckError" in result.stderr
    expected = "cocart_jwt.E012" if isinstance(broken, str) else "cocart_jwt.E001"
    assert expected in result.stderr
    assert result.stderr.count("Traceback") == 1  # only call_command's SystemCheckError
