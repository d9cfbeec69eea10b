"""gunicorn settings for production-like runs of the example store.

    DJANGO_DEBUG=0 DJANGO_SECRET_KEY=... DJANGO_ALLOWED_HOSTS=shop.example \\
    COCART_JWT_SIGNING_KEY=... DATABASE_URL=postgres://... REDIS_URL=redis://... \\
    gunicorn -c example_project/gunicorn.conf.py

Knobs: ``PORT`` (8000) or ``GUNICORN_BIND`` (``127.0.0.1:$PORT``), ``WEB_CONCURRENCY``
(workers: 2 x CPUs + 1, at most 8), ``GUNICORN_THREADS`` (1: sync workers),
``GUNICORN_LOG_LEVEL`` (info). Put a reverse proxy (TLS) in front, and list it in
``COCART_JWT_TRUSTED_PROXIES`` so rate limits see the client's address.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
chdir = str(ROOT)
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")

# Read the settings once here, in the master: a missing key or secret stops gunicorn with
# one clear error instead of every worker failing to boot, and the development-key warning
# is printed once rather than once per worker.
import example_project.settings  # noqa: E402,F401

wsgi_app = "example_project.wsgi:application"
bind = os.environ.get("GUNICORN_BIND") or f"127.0.0.1:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY") or min(2 * multiprocessing.cpu_count() + 1, 8))
threads = int(os.environ.get("GUNICORN_THREADS") or 1)
worker_class = "gthread" if threads > 1 else "sync"
timeout = 30
graceful_timeout = 20
keepalive = 5
# Recycle workers now and then (memory growth in long-lived processes), not all at once.
max_requests = 5000
max_requests_jitter = 500

loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
accesslog = "-"
errorlog = "-"
# The path without its query string (%(U)s, not %(r)s): a login link carries its single-use
# token in the query. No %(u)s either: it decodes HTTP Basic credentials for the user name.
access_log_format = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms "%(a)s"'
