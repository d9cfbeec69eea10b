"""What a newcomer runs into, answered: checks that teach, commands that work in a release step.

- A site that issues tokens but forgot ``include("cocart_jwt.urls")`` fails ``check`` with
  ``cocart_jwt.E016``, and the admin's create and mint pages say so instead of a 500; a
  verify-only resource server needs no urls.
- ``Authorization: JWT <t>``, ``Token <t>`` or a bare token: a 401 with a Bearer challenge,
  and an INFO record in the ``cocart_jwt`` log naming the scheme (never the token).
- A key that is not there yet (unset ``env:`` variable, missing key file) lets ``migrate`` and
  ``collectstatic`` run (W007) but fails ``check``, ``check --deploy`` and ``runserver``; a key
  that is there but wrong fails them all.
- Every check message carries a hint, and none has a stray space.

This module is also the URLconf of the item-3 tests: the admin, without ``cocart_jwt.urls``.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.admin.utils import quote
from django.core.checks import CheckMessage, run_checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import Client
from django.urls import path, reverse
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.test import APIClient, APIRequestFactory
from rest_framework.views import APIView

from cocart_jwt.authentication import JWTAuthentication
from cocart_jwt.checks import __doc__ as CHECKS_DOC
from cocart_jwt.models import LoginLink, Token
from tests.factories import hmac_secret, login, private_pem, public_pem

urlpatterns = [path("admin/", admin.site.urls)]  # no include("cocart_jwt.urls")
WITHOUT_COCART_URLS = "tests.test_newcomer_checks"

REPO = Path(__file__).resolve().parent.parent
ME = "/api/me/"
NOT_PROVIDED = "Authentication credentials were not provided."
UNSET_VAR = "COCART_JWT_NEWCOMER_UNSET_VAR"
SET_VAR = "COCART_JWT_NEWCOMER_SET_VAR"
GARBAGE_PEM = "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5IGF0IGFsbA==\n-----END PRIVATE KEY-----\n"
SHARED = {
    "BACKEND": "django_redis.cache.RedisCache",
    "LOCATION": "redis://127.0.0.1:6379/15",
    "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.25, "SOCKET_TIMEOUT": 0.25},
}
LOCMEM = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "newcomer"}


def cocart_messages(**kwargs: Any) -> list[CheckMessage]:
    return [m for m in run_checks(**kwargs) if m.id and m.id.startswith("cocart_jwt.")]


def cocart_ids(**kwargs: Any) -> list[str]:
    return sorted(m.id for m in cocart_messages(**kwargs) if m.id)


@pytest.fixture
def quiet_caches(settings: Any) -> None:
    """A shared rate-limit cache, so W002 does not depend on which services are running."""
    settings.CACHES = {"default": SHARED, "locmem": LOCMEM}
    settings.DEBUG = False


# -- item 3: cocart_jwt.urls forgotten -----------------------------------------------------


def test_a_site_that_issues_tokens_without_cocart_jwt_urls_fails_check_with_e016(
    settings: Any, quiet_caches: None
) -> None:
    settings.ROOT_URLCONF = WITHOUT_COCART_URLS

    with pytest.raises(SystemCheckError) as raised:
        call_command("check")

    shown = str(raised.value)
    assert "cocart_jwt.E016" in shown
    assert "cocart_jwt.urls" in shown
    assert 'path("api/auth/", include("cocart_jwt.urls"))' in shown


def test_the_same_site_with_cocart_jwt_urls_is_clean(settings: Any, quiet_caches: None) -> None:
    assert "cocart_jwt.E016" not in cocart_ids()


def test_a_verify_only_resource_server_needs_no_urls(settings: Any, quiet_caches: None) -> None:
    settings.ROOT_URLCONF = WITHOUT_COCART_URLS
    settings.COCART_JWT = {
        "ISSUER": "https://newcomer.example",
        "AUDIENCE": "https://newcomer.example/api",
        "ALGORITHM": "RS256",
        "VERIFYING_KEY": public_pem(private_pem("RS256", 0)),
    }

    assert cocart_ids() == ["cocart_jwt.W005"]


def test_admin_create_without_cocart_jwt_urls_is_a_message_not_a_500(
    admin_client: Client, user: Any, settings: Any
) -> None:
    settings.ROOT_URLCONF = WITHOUT_COCART_URLS
    add = reverse("admin:cocart_jwt_token_add")
    data = {
        "user": user.pk,
        "lifetime": "24h",
        "claims": "",
        "description": "",
        "refreshable": "on",
    }

    response = admin_client.post(add, data, follow=True)

    assert response.status_code == 200
    page = response.content.decode()
    assert "cocart_jwt.urls" in page and "include(&quot;cocart_jwt.urls&quot;)" in page
    assert Token.objects.count() == 0 and LoginLink.objects.count() == 0
    assert admin_client.get(add).status_code == 302  # the form says it before anyone fills it


def test_admin_mint_without_cocart_jwt_urls_is_a_message_not_a_500(
    admin_client: Client, user: Any, settings: Any
) -> None:
    session = Token.objects.issue(user).session
    settings.ROOT_URLCONF = WITHOUT_COCART_URLS
    mint = reverse("admin:cocart_jwt_token_mint", args=[quote(session.pk)])

    response = admin_client.post(mint, follow=True)

    assert response.status_code == 200
    assert "cocart_jwt.urls" in response.content.decode()
    assert LoginLink.objects.count() == 0


# -- item 4: another Authorization scheme ---------------------------------------------------


@pytest.fixture
def access_token(api_client: APIClient, user: Any, password: str) -> str:
    return str(login(api_client, user.username, password).json()["access_token"])


def info_records(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What the ``cocart_jwt`` logger said at INFO (args merged: the whole line as shown)."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "cocart_jwt" and r.levelno == logging.INFO
    ]


@pytest.mark.parametrize(
    ("header", "logged"),
    [
        ("JWT {token}", "Authorization header with scheme JWT ignored"),
        ("Token {token}", "Authorization header with scheme Token ignored"),
        ("jwt {token}", "Authorization header with scheme jwt ignored"),
        ("{token}", "Authorization header without a scheme ignored"),
    ],
    ids=["JWT", "Token", "jwt", "bare"],
)
def test_another_scheme_is_a_401_with_a_bearer_challenge_and_a_log_line(
    header: str,
    logged: str,
    access_token: str,
    api_client: APIClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="cocart_jwt"):
        response = api_client.get(ME, HTTP_AUTHORIZATION=header.format(token=access_token))

    assert response.status_code == 401
    assert response.json()["detail"] == NOT_PROVIDED
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    records = info_records(caplog)
    assert [m for m in records if m.startswith(logged)], records
    assert "send Bearer <token>" in " ".join(records)
    assert not any(access_token[:20] in m or access_token[-20:] in m for m in records)


def test_the_same_token_as_bearer_works(access_token: str, api_client: APIClient) -> None:
    assert api_client.get(ME, HTTP_AUTHORIZATION=f"Bearer {access_token}").status_code == 200


def test_a_long_scheme_is_not_named(
    access_token: str, api_client: APIClient, caplog: pytest.LogCaptureFixture
) -> None:
    scheme = "Abcdefghijklmnopqrstuvwxyzabcd"  # 30 letters: may be a credential, not a word
    with caplog.at_level(logging.INFO, logger="cocart_jwt"):
        response = api_client.get(ME, HTTP_AUTHORIZATION=f"{scheme} {access_token}")

    assert response.status_code == 401
    records = info_records(caplog)
    assert "Authorization header with an unknown scheme ignored: send Bearer <token>" in records
    assert not any(scheme[:10] in m or access_token[:20] in m for m in records)


@pytest.mark.parametrize("word", ["hunter2hunter2", "s3cr3t-api-key_123", "abcdefghij"])
def test_a_one_word_header_is_never_logged(
    word: str, api_client: APIClient, caplog: pytest.LogCaptureFixture, db: None
) -> None:
    with caplog.at_level(logging.INFO, logger="cocart_jwt"):
        response = api_client.get(ME, HTTP_AUTHORIZATION=word)

    assert response.status_code == 401
    records = info_records(caplog)
    assert "Authorization header without a scheme ignored: send Bearer <token>" in records
    assert not any(word in m for m in records)


def test_basic_is_another_method_not_a_mistake(
    api_client: APIClient, user: Any, password: str, caplog: pytest.LogCaptureFixture
) -> None:
    """HTTP Basic: a proxy's password on a staging site, or credentials for the login view."""
    basic = "Basic YWxpY2U6c2VjcmV0"
    with caplog.at_level(logging.INFO, logger="cocart_jwt"):
        assert api_client.get(ME, HTTP_AUTHORIZATION=basic).status_code == 401
        api_client.post(reverse("cocart_jwt:login"), HTTP_AUTHORIZATION=basic)

    assert not [r for r in caplog.records if "Authorization header" in r.getMessage()]


class AnnouncesToken(BaseAuthentication):
    """Stands for DRF's TokenAuthentication: reads ``Token <key>`` (here: nobody's)."""

    def authenticate(self, request: Request) -> None:
        return None

    def authenticate_header(self, request: Request) -> str:
        return "Token"


class BothSchemes(APIView):
    authentication_classes = [JWTAuthentication, AnnouncesToken]
    permission_classes = [IsAuthenticated]

    def get(self, request: Request) -> Response:
        return Response({})


def test_a_scheme_another_authentication_class_reads_is_not_logged(
    caplog: pytest.LogCaptureFixture, db: None
) -> None:
    request = APIRequestFactory().get("/", HTTP_AUTHORIZATION="Token 0123456789abcdef")
    with caplog.at_level(logging.INFO, logger="cocart_jwt"):
        response = BothSchemes.as_view()(request)

    assert response.status_code == 401
    assert not [r for r in caplog.records if "Authorization header" in r.getMessage()]


# -- item 5: a key that is not there yet ----------------------------------------------------


def check_messages_for(settings: Any, cocart_jwt: dict[str, Any], **kwargs: Any) -> list[str]:
    settings.COCART_JWT = {
        "ISSUER": "https://newcomer.example",
        "AUDIENCE": "https://newcomer.example/api",
        **cocart_jwt,
    }
    return cocart_ids(**kwargs)


@pytest.mark.parametrize(
    ("key", "error"),
    [
        ({"SIGNING_KEY": f"env:{UNSET_VAR}"}, "cocart_jwt.E002"),
        ({"ALGORITHM": "ES256", "SIGNING_KEY": "file:/run/secrets/newcomer-missing.pem"}, "E003"),
        ({"ALGORITHM": "ES256", "SIGNING_KEY": Path("/run/secrets/newcomer-missing.pem")}, "E003"),
        ({"ALGORITHM": "RS256", "SIGNING_KEY": "/run/secrets/newcomer-missing.pem"}, "E003"),
    ],
    ids=["env-unset", "file-missing", "path-missing", "plain-path-missing"],
)
def test_a_key_not_there_yet_is_a_warning_for_migrate_only(
    key: dict[str, Any], error: str, settings: Any, quiet_caches: None, db: None
) -> None:
    error = error if error.startswith("cocart_jwt.") else f"cocart_jwt.{error}"
    assert check_messages_for(settings, key) == [error]  # check, runserver
    assert check_messages_for(settings, key, include_deployment_checks=True) == [error]
    assert check_messages_for(settings, key, databases=["default"]) == ["cocart_jwt.W007"]


@pytest.mark.parametrize(
    "key",
    [
        {"SIGNING_KEY": "too-short"},
        {"SIGNING_KEY": f"env:{SET_VAR}"},  # set, but too short
        {"ALGORITHM": "RS256", "SIGNING_KEY": GARBAGE_PEM},
        {"ALGORITHM": "RS256", "SIGNING_KEY": private_pem("ES256", 0)},
        {"ALGORITHM": "HS256", "SIGNING_KEY": private_pem("ES256", 0)},
        {"ALGORITHM": "RS256", "SIGNING_KEY": "keys/relative-and-missing.pem"},
    ],
    ids=["short", "env-short", "garbage-pem", "wrong-type", "pem-for-hs", "maybe-a-secret"],
)
def test_a_key_there_but_wrong_fails_migrate_too(
    key: dict[str, Any],
    settings: Any,
    quiet_caches: None,
    monkeypatch: pytest.MonkeyPatch,
    db: None,  # migrate's checks (databases=...) ask the database
) -> None:
    monkeypatch.setenv(SET_VAR, "short")
    ids = check_messages_for(settings, key, databases=["default"])
    assert len(ids) == 1 and ids[0].startswith("cocart_jwt.E00"), ids


def test_a_key_file_that_appears_is_read(
    settings: Any, quiet_caches: None, tmp_path: Path, db: None
) -> None:
    key_file = tmp_path / "jwt.pem"
    key = {"ALGORITHM": "ES256", "SIGNING_KEY": f"file:{key_file}"}
    assert check_messages_for(settings, key, databases=["default"]) == ["cocart_jwt.W007"]

    key_file.write_text(private_pem("ES256", 0))

    assert check_messages_for(settings, key) == []


def test_serving_without_the_key_still_fails(
    settings: Any, user: Any, password: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lenient for migrate only: a login needs the key, and says nothing of it to the client."""
    monkeypatch.delenv(UNSET_VAR, raising=False)
    settings.COCART_JWT = {**settings.COCART_JWT, "SIGNING_KEY": f"env:{UNSET_VAR}"}
    client = APIClient()
    client.raise_request_exception = False

    response = login(client, user.username, password)

    assert response.status_code == 500
    assert UNSET_VAR.encode() not in response.content
    assert Token.objects.count() == 0


RELEASE_SETTINGS = """
from pathlib import Path

HERE = Path(__file__).resolve().parent
SECRET_KEY = "release-step-test-only-" + "x" * 40
DEBUG = False
ALLOWED_HOSTS = ["localhost"]
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.admin",
    "django.contrib.staticfiles",
    "rest_framework",
    "cocart_jwt",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]
ROOT_URLCONF = "release_urls"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": HERE / "db.sqlite3"}}
CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": "redis://127.0.0.1:6379/15",
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.25, "SOCKET_TIMEOUT": 0.25},
    },
}
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = HERE / "static"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
COCART_JWT = {"ISSUER": "https://release.example", **KEY}
"""

RELEASE_URLS = """
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/auth/", include("cocart_jwt.urls")),
]
"""


def manage(tmp_path: Path, key: str, *command: str) -> subprocess.CompletedProcess[str]:
    """``django-admin <command>`` in a fresh site whose COCART_JWT key is ``key`` (source)."""
    (tmp_path / "release_settings.py").write_text(
        f"KEY = {key}\n" + textwrap.dedent(RELEASE_SETTINGS)
    )
    (tmp_path / "release_urls.py").write_text(textwrap.dedent(RELEASE_URLS))
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in (UNSET_VAR, "DJANGO_SETTINGS_MODULE")
    }
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(REPO)])
    env[SET_VAR] = "short"
    return subprocess.run(  # noqa: S603 - our own interpreter and arguments
        [sys.executable, "-m", "django", *command, "--settings=release_settings"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


ENV_UNSET = f'{{"SIGNING_KEY": "env:{UNSET_VAR}"}}'
FILE_MISSING = '{"ALGORITHM": "ES256", "SIGNING_KEY": "file:/run/secrets/newcomer-missing.pem"}'


@pytest.mark.parametrize("key", [ENV_UNSET, FILE_MISSING], ids=["env-unset", "file-missing"])
def test_migrate_and_collectstatic_run_before_the_key_is_mounted(key: str, tmp_path: Path) -> None:
    migrated = manage(tmp_path, key, "migrate", "--noinput")
    assert migrated.returncode == 0, migrated.stderr
    assert "Applying cocart_jwt.0001" in migrated.stdout
    assert "cocart_jwt.W007" in migrated.stderr

    collected = manage(tmp_path, key, "collectstatic", "--noinput")
    assert collected.returncode == 0, collected.stderr
    assert (tmp_path / "static" / "admin").is_dir()


@pytest.mark.parametrize(
    ("command", "error"),
    [
        (("check",), "cocart_jwt.E002"),
        (("check", "--deploy"), "cocart_jwt.E002"),
        (("runserver", "--noreload", "127.0.0.1:0"), "cocart_jwt.E002"),
    ],
    ids=["check", "check-deploy", "runserver"],
)
def test_the_other_commands_still_fail_without_the_key(
    command: tuple[str, ...], error: str, tmp_path: Path
) -> None:
    result = manage(tmp_path, ENV_UNSET, *command)

    assert result.returncode != 0
    assert error in result.stderr
    assert f"Set {UNSET_VAR}" in result.stderr  # the hint


@pytest.mark.parametrize(
    ("key", "error"),
    [
        ('{"SIGNING_KEY": "too-short"}', "cocart_jwt.E002"),
        (f'{{"SIGNING_KEY": "env:{SET_VAR}"}}', "cocart_jwt.E002"),
        (f'{{"ALGORITHM": "RS256", "SIGNING_KEY": {GARBAGE_PEM!r}}}', "cocart_jwt.E003"),
    ],
    ids=["short", "env-short", "garbage-pem"],
)
def test_a_key_there_but_wrong_fails_migrate(key: str, error: str, tmp_path: Path) -> None:
    result = manage(tmp_path, key, "migrate", "--noinput")

    assert result.returncode != 0
    assert error in result.stderr
    assert "Applying" not in result.stdout


# -- item 6: every message says how to fix it ------------------------------------------------


def on_signed_cookies(settings: Any) -> None:
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"


def without_urls(settings: Any) -> None:
    settings.ROOT_URLCONF = WITHOUT_COCART_URLS


def without_socket_timeout(settings: Any) -> None:
    settings.CACHES = {**settings.CACHES, "default": {**SHARED, "OPTIONS": {}}}


def not_a_dict(settings: Any) -> None:
    settings.COCART_JWT = ["SIGNING_KEY", "x"]


NOT_CALLABLE = "a string is no function"
HS = {"ALGORITHM": "HS256", "SIGNING_KEY": hmac_secret("HS256", 7)}
FALLBACK = {"ALGORITHM": "HS256", "SIGNING_KEY": hmac_secret("HS256", 8)}
BAD_SETTINGS: dict[str, tuple[str, dict[str, Any], Any]] = {
    # name: (expected id, COCART_JWT over HS, a further change of settings or None)
    "unknown-algorithm": ("E001", {"ALGORITHM": "HS1024"}, None),
    "scope-with-a-space": ("E019", {"SCOPES": {"orders read": "Read orders"}}, None),
    "no-personal-token-lifetime": ("E020", {"PAT_MAX_LIFETIME": 0}, None),
    "no-issuer": ("W011", {"ISSUER": None}, None),
    "process-local-dpop-cache": ("W012", {"CACHE": "locmem"}, None),
    "fallback-unknown-algorithm": (
        "E001",
        {"FALLBACK_KEYS": [{**FALLBACK, "ALGORITHM": "x"}]},
        None,
    ),
    "unhashable-algorithm": ("E001", {"ALGORITHM": ["HS256"]}, None),
    "no-secret": ("E002", {"SIGNING_KEY": None}, None),
    "short-secret": ("E002", {"SIGNING_KEY": "short"}, None),
    "secret-of-a-wrong-type": ("E002", {"SIGNING_KEY": 42}, None),
    "env-unset": ("E002", {"SIGNING_KEY": f"env:{UNSET_VAR}"}, None),
    "no-asymmetric-key": ("E003", {"ALGORITHM": "RS256", "SIGNING_KEY": None}, None),
    "garbage-private-pem": ("E003", {"ALGORITHM": "RS256", "SIGNING_KEY": GARBAGE_PEM}, None),
    "garbage-public-pem": (
        "E003",
        {"ALGORITHM": "ES256", "SIGNING_KEY": None, "VERIFYING_KEY": GARBAGE_PEM},
        None,
    ),
    "missing-file": ("E003", {"ALGORITHM": "ES256", "SIGNING_KEY": "file:/nonexistent/k"}, None),
    "plain-path": ("E003", {"ALGORITHM": "ES256", "SIGNING_KEY": "/nonexistent/k.pem"}, None),
    "env-path": ("E003", {"ALGORITHM": "ES256", "SIGNING_KEY": f"env:{SET_VAR}"}, None),
    "pem-for-hs": ("E004", {"SIGNING_KEY": private_pem("ES256", 0)}, None),
    "ec-for-rs": ("E004", {"ALGORITHM": "RS256", "SIGNING_KEY": private_pem("ES256", 0)}, None),
    "p256-for-es384": (
        "E004",
        {"ALGORITHM": "ES384", "SIGNING_KEY": private_pem("ES256", 0)},
        None,
    ),
    "not-the-public-half": (
        "E004",
        {
            "ALGORITHM": "RS256",
            "SIGNING_KEY": private_pem("RS256", 0),
            "VERIFYING_KEY": public_pem(private_pem("RS256", 1)),
        },
        None,
    ),
    "lifetime": ("E005", {"ACCESS_TOKEN_LIFETIME": "15m"}, None),
    "zero-lifetime": ("E005", {"REFRESH_TOKEN_LIFETIME": 0}, None),
    "negative-leeway": ("E005", {"LEEWAY": -1}, None),
    "access-over-refresh": ("E005", {"ACCESS_TOKEN_LIFETIME": 10**7}, None),
    "refresh-over-session": ("E005", {"REFRESH_TOKEN_LIFETIME": 10**8}, None),
    "max-tokens": ("E005", {"MAX_TOKENS_PER_USER": 0}, None),
    "token-prefix": ("E005", {"TOKEN_PREFIX": 7}, None),
    "rates-not-dict": ("E006", {"RATE_LIMITS": "5/min"}, None),
    "rate-endpoint": ("E006", {"RATE_LIMITS": {"signup": "5/min"}}, None),
    "rate": ("E006", {"RATE_LIMITS": {"login": "5/fortnight"}}, None),
    "key-id": ("E007", {"KEY_ID": ""}, None),
    "fallbacks-not-list": ("E007", {"FALLBACK_KEYS": FALLBACK}, None),
    "fallback-not-dict": ("E007", {"FALLBACK_KEYS": ["old"]}, None),
    "fallback-duplicate": ("E007", {"FALLBACK_KEYS": [HS]}, None),
    "revoke-on-string": ("E008", {"REVOKE_ON": "logout"}, None),
    "revoke-on-event": ("E008", {"REVOKE_ON": ["login"]}, None),
    "import-string": ("E009", {"USER_CLAIMS": "tests.no_such_module.f"}, None),
    "not-callable": ("E009", {"PAYLOAD_HOOK": "tests.test_newcomer_checks.NOT_CALLABLE"}, None),
    "cache-alias": ("E010", {"CACHE": "sessions"}, None),
    "proxies-string": ("E011", {"TRUSTED_PROXIES": "10.0.0.1"}, None),
    "proxy": ("E011", {"TRUSTED_PROXIES": ["not-an-ip"]}, None),
    "not-a-dict": ("E012", {}, not_a_dict),
    "cookies-insecure": ("E013", {"COOKIE_TRANSPORT": True, "COOKIE_SECURE": False}, None),
    "samesite": ("E014", {"COOKIE_TRANSPORT": True, "COOKIE_SAMESITE": "Loose"}, None),
    "samesite-none": (
        "E014",
        {"COOKIE_TRANSPORT": True, "COOKIE_SAMESITE": "None", "COOKIE_SECURE": False},
        None,
    ),
    "cookie-name": ("E014", {"COOKIE_TRANSPORT": True, "REFRESH_COOKIE_NAME": "a;b"}, None),
    "ipv6-prefix": ("E015", {"RATE_LIMIT_IPV6_PREFIX": 0}, None),
    "no-urls": ("E016", {}, without_urls),
    "wait-replicas": ("E017", {"REDIS_WAIT_REPLICAS": -1}, None),
    "wait-timeout": ("E017", {"REDIS_WAIT_REPLICAS": 1, "REDIS_WAIT_TIMEOUT": 0}, None),
    "idle-timeout": ("E018", {"SESSION_IDLE_TIMEOUT": 60}, None),
    "idle-timeout-type": ("E018", {"SESSION_IDLE_TIMEOUT": "30 minutes"}, None),
    "dpop-algorithms": ("E021", {"DPOP_ALGORITHMS": ["HS256"]}, None),
    "dpop-algorithms-empty": ("E021", {"DPOP_ALGORITHMS": []}, None),
    "dpop-lifetime": ("E021", {"DPOP_PROOF_LIFETIME": 0}, None),
    "secret-key": ("W001", {"SIGNING_KEY": "tests-only-django-secret-key-not-used"}, None),
    "local-rate-cache": ("W002", {"RATE_LIMIT_CACHE": "locmem"}, None),
    "local-session-cache": ("W003", {"SESSION_CACHE_TTL": 30, "CACHE": "locmem"}, None),
    "typo": ("W004", {"SIGNING_KYE": "x"}, None),
    "typo-far": ("W004", {"COLOUR": "x"}, None),
    "verify-only": (
        "W005",
        {
            "ALGORITHM": "ES256",
            "SIGNING_KEY": None,
            "VERIFYING_KEY": public_pem(private_pem("ES256", 0)),
        },
        None,
    ),
    "signed-cookies": ("W006", {}, on_signed_cookies),
    "key-not-there-yet": ("W007", {"SIGNING_KEY": f"env:{UNSET_VAR}"}, None),
    "wait-without-redis": (
        "W008",
        {"SESSION_CACHE_TTL": 30, "CACHE": "locmem", "REDIS_WAIT_REPLICAS": 1},
        None,
    ),
    "no-socket-timeout": ("W009", {}, without_socket_timeout),
    "wait-past-socket-timeout": (
        "W010",
        {"SESSION_CACHE_TTL": 30, "REDIS_WAIT_REPLICAS": 1, "REDIS_WAIT_TIMEOUT": 0.5},
        None,
    ),
}


def messages_for(name: str, settings: Any, monkeypatch: pytest.MonkeyPatch) -> list[CheckMessage]:
    check_id, cocart_jwt, change = BAD_SETTINGS[name]
    monkeypatch.setenv(SET_VAR, "/nonexistent/from-the-environment.pem")
    monkeypatch.delenv(UNSET_VAR, raising=False)
    settings.CACHES = {"default": SHARED, "locmem": LOCMEM}
    settings.DEBUG = False
    if name == "secret-key":
        cocart_jwt = {"SIGNING_KEY": settings.SECRET_KEY}
    settings.COCART_JWT = {
        **HS,
        "ISSUER": "https://newcomer.example",
        "AUDIENCE": "https://newcomer.example/api",
        **cocart_jwt,
    }
    if change is not None:
        change(settings)
    databases = ["default"] if check_id == "W007" else None
    return cocart_messages(databases=databases)


@pytest.mark.parametrize("name", sorted(BAD_SETTINGS))
def test_every_check_message_says_how_to_fix_it(
    name: str, settings: Any, monkeypatch: pytest.MonkeyPatch, db: None
) -> None:
    messages = messages_for(name, settings, monkeypatch)

    assert f"cocart_jwt.{BAD_SETTINGS[name][0]}" in [m.id for m in messages]
    for message in messages:
        assert message.hint and message.hint.strip(), message
        for text in (message.msg, message.hint):
            assert " :" not in text and "  " not in text and ".." not in text, text
            assert not re.search(r"\s[.,;]", text), text


def test_the_bad_settings_cover_every_documented_check_id() -> None:
    documented = set(re.findall(r"\b([EW]\d{3})\b", CHECKS_DOC or ""))
    assert {check_id for check_id, _, _ in BAD_SETTINGS.values()} == documented
    assert {"E016", "W007"} <= documented


def test_an_unknown_algorithm_reads_cleanly(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    (message,) = messages_for("unknown-algorithm", settings, monkeypatch)

    assert message.msg == "COCART_JWT ALGORITHM 'HS1024' is not a known algorithm."
    assert message.hint is not None and message.hint.startswith("Use one of ES256, ES384")


def test_a_typo_gets_the_setting_it_meant(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    (message,) = messages_for("typo", settings, monkeypatch)

    assert "Did you mean 'SIGNING_KEY'?" in (message.hint or "")
