"""Settings of the test suite: real PostgreSQL and Redis when they answer, else SQLite and locmem.

See tests/services.py for how they are found, and tests/conftest.py for what happens
to tests that need a missing service (skipped locally, a failed run under CI).
"""

from __future__ import annotations

import json
import os
from typing import Any

from example_project.env import parse_database_url
from tests.services import postgres_url, redis_url

POSTGRES_URL = postgres_url()
REDIS_URL = redis_url()
HAS_POSTGRES = POSTGRES_URL is not None
HAS_REDIS = REDIS_URL is not None

SECRET_KEY = "tests-only-django-secret-key-not-used-anywhere-else-0123456789"
DEBUG = False
ALLOWED_HOSTS = ["*"]

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
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "tests.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

# A child process (runserver, gunicorn) started by a live-server test can share the
# pytest test database: the test sets COCART_JWT_TEST_DB_NAME for both.
_TEST_DB_NAME = os.environ.get("COCART_JWT_TEST_DB_NAME") or None

_default_db: dict[str, Any]
if POSTGRES_URL is not None:
    _default_db = parse_database_url(POSTGRES_URL)
    _default_db["CONN_MAX_AGE"] = 0
    # One test database per run, so parallel runs on one server do not drop each other's.
    _default_db["TEST"] = {"NAME": f"test_cocart_jwt_{os.getpid()}"}
else:
    # In-memory by default; a file when a child process must share it.
    _default_db = {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}
if _TEST_DB_NAME:
    _default_db["NAME"] = _TEST_DB_NAME
    _default_db["TEST"] = {"NAME": _TEST_DB_NAME}


def _replica_of(primary: dict[str, Any]) -> dict[str, Any]:
    """A second database of the same engine, standing for a read replica that lags: NOT a
    test mirror of default, so a test can hold a stale copy of rows in it
    (tests/test_replica_reads.py). pytest-django creates it only for the tests that ask for it
    (``django_db(databases=[..., "replica"])``): the others never pay for it."""
    # Its tables made from the models, not migrated: the same schema, a second sooner.
    replica = {**primary, "TEST": {**(primary.get("TEST") or {}), "MIGRATE": False}}
    if primary["NAME"] != ":memory:":
        replica["NAME"] = f"{primary['NAME']}_replica"
    if replica["TEST"].get("NAME"):
        replica["TEST"]["NAME"] = f"{replica['TEST']['NAME']}_replica"
    return replica


DATABASES = {"default": _default_db, "replica": _replica_of(_default_db)}

_locmem = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
if REDIS_URL is not None:
    _default_cache: dict[str, Any] = {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "cocart_jwt_tests",
        # Generous for a loaded test machine, still a bound (cocart_jwt.W009).
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 2, "SOCKET_TIMEOUT": 2},
    }
else:
    _default_cache = {**_locmem, "LOCATION": "cocart_jwt_tests_default"}
CACHES = {
    "default": _default_cache,
    "locmem": {**_locmem, "LOCATION": "cocart_jwt_tests_locmem"},
}

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"

# Not the app's BigAutoField: proves the app pins its own (no migrations from a host default).
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["cocart_jwt.authentication.JWTAuthentication"],
    # From the start: a view's schema class is fixed the first time it is read.
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

COCART_JWT = {
    "SIGNING_KEY": "test-signing-key-"
    + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "ISSUER": "https://shop.example",
}
# A child server process started by a test can take more settings (cached mode, limits...)
# as JSON: COCART_JWT_TEST_OVERRIDES='{"SESSION_CACHE_TTL": 300}'.
COCART_JWT.update(json.loads(os.environ.get("COCART_JWT_TEST_OVERRIDES") or "{}"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        # propagate stays True so pytest's caplog (on the root logger) sees the records.
        "cocart_jwt": {"handlers": ["console"], "level": "DEBUG", "propagate": True},
    },
}
