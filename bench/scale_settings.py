"""Settings of ``bench/scale.py``: ``bench/settings.py`` plus the admin it measures.

The admin needs sessions, messages, templates and their middleware; the other benchmarks keep
``bench/settings.py`` alone, whose empty middleware they measure around. The database is
``BENCH_DATABASE_URL`` (``bench/scale.py`` sets it: its own ``cocart_jwt_scale`` by default).
"""

from __future__ import annotations

from bench.settings import *  # noqa: F403

INSTALLED_APPS = [  # noqa: F405
    *INSTALLED_APPS,  # noqa: F405
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.admin",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
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
STATIC_URL = "/static/"
