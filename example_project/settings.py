"""Settings of the example store.

With no environment at all it runs for development: DEBUG on, SQLite (``db.sqlite3``), the
local-memory cache, and a signing key generated once into ``.example-signing-key`` (with a
loud warning). Everything real comes from the environment:

==============================  =========================================================
``DJANGO_DEBUG``                ``1`` (default) or ``0``
``DJANGO_SECRET_KEY``           required when DEBUG is off
``DJANGO_ALLOWED_HOSTS``        comma-separated; ``*`` when DEBUG is on
``DATABASE_URL``                ``postgres://user:pass@host:5432/name`` or ``sqlite:///path``
``REDIS_URL``                   ``redis://host:6379/0``: django-redis as the default cache
``COCART_JWT_SIGNING_KEY``      required when DEBUG is off (``manage.py jwt keygen``)
``COCART_JWT_ALGORITHM``        the key's algorithm (default HS256)
``COCART_JWT_ISSUER``           the ``iss`` claim (default ``https://store.example``)
``COCART_JWT_AUDIENCE``         the ``aud`` claim (default ``https://store.example/api``)
``COCART_JWT_SESSION_CACHE_TTL``  seconds; 0 (default) is strict mode
``COCART_JWT_ACCESS_TOKEN_LIFETIME``  seconds (default 900)
``COCART_JWT_REAUTH_MAX_AGE``   seconds a login counts as recent for checkout (default 300)
``COCART_JWT_DPOP_REQUIRE_NONCE``  ``1``: DPoP proofs at login and refresh need a server nonce
``COCART_JWT_RATE_LIMITS``      JSON merged over the defaults: ``{"login": "20/min"}``
``COCART_JWT_TRUSTED_PROXIES``  comma-separated IPs or networks of your reverse proxies
``DJANGO_PASSWORD_HASHERS``     comma-separated hasher paths (tests and load checks only)
``EXAMPLE_SIGNING_KEY_FILE``    where the development key lives (default: the repo root)
==============================  =========================================================
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from example_project.env import dev_signing_key, env_flag, env_list, parse_database_url

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_flag("DJANGO_DEBUG", default=True)

if os.environ.get("DJANGO_SECRET_KEY"):
    SECRET_KEY = os.environ["DJANGO_SECRET_KEY"]
elif DEBUG:
    SECRET_KEY = "django-insecure-dev-only-example-project-do-not-deploy"
else:
    raise ImproperlyConfigured("DJANGO_DEBUG is off: set DJANGO_SECRET_KEY.")

ALLOWED_HOSTS = ["*"] if DEBUG else env_list("DJANGO_ALLOWED_HOSTS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "cocart_jwt",
    "drf_spectacular",
    "example_project.store",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "example_project.urls"
WSGI_APPLICATION = "example_project.wsgi.application"

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

_database: dict[str, Any]
if os.environ.get("DATABASE_URL"):
    _database = parse_database_url(os.environ["DATABASE_URL"])
else:
    _database = {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db.sqlite3"}
if _database["ENGINE"].endswith("sqlite3"):
    # Several processes (gunicorn workers) and threads (runserver) write to one file: take
    # the write lock at BEGIN and wait for it, instead of failing with "database is locked".
    _database["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    _database.setdefault("CONN_MAX_AGE", 60)
    _database.setdefault("CONN_HEALTH_CHECKS", True)
DATABASES = {"default": _database}

if os.environ.get("REDIS_URL"):
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": os.environ["REDIS_URL"],
            "KEY_PREFIX": "store",
            # A hung Redis costs a request at most this long, then the strict query answers.
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.25, "SOCKET_TIMEOUT": 0.25},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
if os.environ.get("DJANGO_PASSWORD_HASHERS"):
    PASSWORD_HASHERS = env_list("DJANGO_PASSWORD_HASHERS")

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# Not the app's BigAutoField: makemigrations --check proves the app pins its own.
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["cocart_jwt.authentication.JWTAuthentication"],
    # Closed unless a view says otherwise (the product list does); a personal access token
    # only where a view names the scopes it needs (required_scopes), and holds them.
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "cocart_jwt.permissions.HasScope",
    ],
    # {"detail", "code"} on every error, like the auth endpoints.
    "EXCEPTION_HANDLER": "example_project.store.views.exception_handler",
    # DRF's parsers, with JSON nested too deeply a 400 instead of a 500.
    "DEFAULT_PARSER_CLASSES": [
        "cocart_jwt.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 20,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Example store API",
    "DESCRIPTION": "A tiny headless store behind cocart_jwt: log in, then send the access "
    "token as `Authorization: Bearer <token>`.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",  # drf-spectacular's default
        # The login link page (a Django view drf-spectacular does not see) and the links
        # from a token pair to refresh and to revoking its session.
        "cocart_jwt.schema.postprocess_schema",
    ],
}

if os.environ.get("COCART_JWT_SIGNING_KEY"):
    # Read through "env:" so the key never sits in this module's globals.
    _signing_key = "env:COCART_JWT_SIGNING_KEY"
elif DEBUG:
    _signing_key = dev_signing_key(
        Path(os.environ.get("EXAMPLE_SIGNING_KEY_FILE") or BASE_DIR / ".example-signing-key")
    )
else:
    raise ImproperlyConfigured(
        "DJANGO_DEBUG is off: set COCART_JWT_SIGNING_KEY (python manage.py jwt keygen prints one)."
    )

COCART_JWT: dict[str, Any] = {
    "SIGNING_KEY": _signing_key,
    "ALGORITHM": os.environ.get("COCART_JWT_ALGORITHM", "HS256"),
    "ISSUER": os.environ.get("COCART_JWT_ISSUER", "https://store.example"),
    "AUDIENCE": os.environ.get("COCART_JWT_AUDIENCE", "https://store.example/api"),
    "SESSION_CACHE_TTL": int(os.environ.get("COCART_JWT_SESSION_CACHE_TTL", "0")),
    "ACCESS_TOKEN_LIFETIME": int(os.environ.get("COCART_JWT_ACCESS_TOKEN_LIFETIME", "900")),
    "REAUTH_MAX_AGE": int(os.environ.get("COCART_JWT_REAUTH_MAX_AGE", "300")),
    "DPOP_REQUIRE_NONCE": os.environ.get("COCART_JWT_DPOP_REQUIRE_NONCE") == "1",
    "TRUSTED_PROXIES": env_list("COCART_JWT_TRUSTED_PROXIES"),
    # What a personal access token (POST /api/auth/tokens/) may be given; the views name the
    # ones they need. Checkout also takes a recent login, which no personal token has.
    "SCOPES": {
        "profile:read": "See your username (/api/me/)",
        "cart:read": "See your cart",
        "cart:write": "Add to, change and empty your cart",
        "orders:read": "See your orders",
        "orders:write": "Check out (also needs a recent login: people only)",
    },
}
if os.environ.get("COCART_JWT_RATE_LIMITS"):
    _limits = json.loads(os.environ["COCART_JWT_RATE_LIMITS"])
    if not isinstance(_limits, dict):
        raise ImproperlyConfigured("COCART_JWT_RATE_LIMITS must be a JSON object.")
    COCART_JWT["RATE_LIMITS"] = {
        "login": "5/min",
        "refresh": "10/min",
        "validate": "2/min",
        **_limits,
    }

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        # Why a token or a login was refused; never the token or the password itself.
        "cocart_jwt": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}
