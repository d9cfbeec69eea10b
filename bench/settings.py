"""Settings of the benchmarks: this app, simplejwt (with its blacklist) and knox in one site.

PostgreSQL with persistent connections and Redis on loopback, as in production; the URLs
come from BENCH_DATABASE_URL / BENCH_REDIS_URL (defaults: the local services). Passwords are
hashed with MD5 so that logins measure the token work, not PBKDF2. This app runs with
its rate limits off and its other settings at their defaults, the session cap of 10 included;
the session cache is on only where a case asks for it.
"""

from __future__ import annotations

import os
from datetime import timedelta

from example_project.env import parse_database_url

DATABASE_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/cocart_jwt_bench"
)
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")

SECRET_KEY = "bench-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
ROOT_URLCONF = "bench.urls"
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "knox",
    "cocart_jwt",
]
MIDDLEWARE: list[str] = []
DATABASES = {"default": {**parse_database_url(DATABASE_URL), "CONN_MAX_AGE": None}}
CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "bench",
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.25, "SOCKET_TIMEOUT": 0.25},
    }
}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

SIGNING_KEY = "bench-signing-key-" + "x" * 48
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "DEFAULT_THROTTLE_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
}
SIMPLE_JWT = {
    "SIGNING_KEY": SIGNING_KEY,
    "ALGORITHM": "HS256",
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=15),
}
REST_KNOX = {"TOKEN_TTL": timedelta(hours=10), "AUTO_REFRESH": False}
COCART_JWT = {
    "SIGNING_KEY": SIGNING_KEY,
    "ISSUER": "https://bench.example",
    "RATE_LIMITS": {"login": None, "refresh": None, "validate": None},
    # MAX_TOKENS_PER_USER stays at its default (10): the login benchmark's user is at the
    # cap after ten logins, so each further login also revokes its oldest session, as a
    # site's regular users do.
    # bench/throughput.py serves the cached mode from its own gunicorn run.
    "SESSION_CACHE_TTL": int(os.environ.get("BENCH_SESSION_CACHE_TTL", "0")),
}
