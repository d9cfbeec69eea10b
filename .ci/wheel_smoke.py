"""What .ci/wheel-smoke checks, in two steps (stdlib and the installed wheel only).

``contents SRC DIST``: with the build tool's Python. Every file of the package in the source
(SRC/cocart_jwt: modules, migrations, templates, static, locale, py.typed) is in the wheel, and
in the sdist; nothing in the wheel's package is missing from the source.

``site CHECKOUT``: with the Python of a fresh virtualenv that has only the wheel installed,
run as ``python -I`` from a directory outside the checkout. A new site (settings and urls in
a temporary directory) migrates, checks, collects static files and serves the admin screens,
the login-link pages and the login endpoint: it all comes from the wheel, or it fails.
"""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

PACKAGE = "cocart_jwt"
KINDS = ("templates", "migrations", "static", "locale")  # counted in the wheel, shown
PASSWORD = "wheel-smoke-password-123"  # noqa: S105 - a throw-away site's user

SETTINGS = """
SECRET_KEY = "wheel-smoke-django-secret-key-not-used-anywhere-else-0123456789"
DEBUG = False
ALLOWED_HOSTS = ["testserver"]
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "cocart_jwt",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "smoke_urls"
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
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": %(database)r}}
STATIC_URL = "static/"
STATIC_ROOT = %(static_root)r
REST_FRAMEWORK = {"DEFAULT_AUTHENTICATION_CLASSES": ["cocart_jwt.authentication.JWTAuthentication"]}
COCART_JWT = {"SIGNING_KEY": "env:COCART_JWT_SIGNING_KEY"}
"""

URLS = """
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/auth/", include("cocart_jwt.urls")),
]
"""


def fail(message: str) -> None:
    print(f"wheel-smoke: FAILED: {message}", file=sys.stderr)
    raise SystemExit(1)


def check(condition: object, message: str) -> None:
    if not condition:
        fail(message)


# -- contents ---------------------------------------------------------------------------------


def source_files(src: Path) -> set[str]:
    """The package's files as a release ships them: no bytecode."""
    root = src / PACKAGE
    return {
        path.relative_to(src).as_posix()
        for path in root.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


def contents(src: Path, dist: Path) -> None:
    wheels = sorted(dist.glob("*.whl"))
    sdists = sorted(dist.glob("*.tar.gz"))
    check(len(wheels) == 1 and len(sdists) == 1, f"one wheel and one sdist in {dist}")
    expected = source_files(src)
    with zipfile.ZipFile(wheels[0]) as wheel:
        in_wheel = {n for n in wheel.namelist() if n.startswith(f"{PACKAGE}/")}
    with tarfile.open(sdists[0]) as sdist:
        in_sdist = {n.split("/", 1)[1] for n in sdist.getnames() if "/" in n}
    missing = sorted(expected - in_wheel)
    check(
        not missing, f"in the source but not in the wheel (pyproject.toml package-data?): {missing}"
    )
    extra = sorted(in_wheel - expected)
    check(not extra, f"in the wheel but not in the source: {extra}")
    missing = sorted(expected - in_sdist)
    check(not missing, f"in the source but not in the sdist: {missing}")
    for required in ("py.typed", "migrations/__init__.py", "management/commands/jwt.py"):
        check(f"{PACKAGE}/{required}" in in_wheel, f"{required} is not in the wheel")
    kinds = {kind: sum(f"/{kind}/" in n for n in in_wheel) for kind in KINDS}
    check(kinds["templates"] and kinds["migrations"] > 1, f"templates and migrations: {kinds}")
    print(
        f"wheel-smoke: {wheels[0].name}: {len(in_wheel)} files of {PACKAGE}, as the source", kinds
    )


# -- site -------------------------------------------------------------------------------------


def installed_package(checkout: Path) -> Path:
    import cocart_jwt

    package = Path(cocart_jwt.__file__).resolve().parent
    site_packages = Path(sysconfig.get_paths()["purelib"]).resolve()
    check(package.is_relative_to(site_packages), f"{package} is not in {site_packages}")
    check(not package.is_relative_to(checkout.resolve()), f"{package} is the checkout's")
    check((package / "py.typed").is_file(), "py.typed is not installed")
    locale = package / "locale"
    catalogs = sorted(p.relative_to(package).as_posix() for p in locale.rglob("*.mo"))
    print(f"wheel-smoke: {PACKAGE} from {package}: py.typed, locale {catalogs or 'none'}")
    return package


def django_admin(site: Path, *args: str) -> str:
    """``django-admin ARGS`` of the fresh virtualenv, in the site's directory."""
    result = subprocess.run(  # noqa: S603 - the virtualenv's django-admin
        [str(Path(sys.executable).with_name("django-admin")), *args],
        cwd=site,
        env=site_env(site),
        capture_output=True,
        text=True,
        timeout=120,
    )
    check(result.returncode == 0, f"django-admin {' '.join(args)}:\n{result.stdout}{result.stderr}")
    return result.stdout + result.stderr


def site_env(site: Path) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DJANGO_", "COCART_JWT_", "PYTHON"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="smoke_settings",
        PYTHONPATH=str(site),  # the settings and urls; nothing of the checkout
        COCART_JWT_SIGNING_KEY="wheel-smoke-signing-key-" + "0123456789abcdef" * 3,
    )
    return env


def make_site(directory: Path) -> Path:
    site = directory / "site"
    site.mkdir()
    values = {
        "database": str(directory / "db.sqlite3"),
        "static_root": str(directory / "static"),
    }
    (site / "smoke_settings.py").write_text(SETTINGS % values)
    (site / "smoke_urls.py").write_text(URLS)
    return site


def migrate_and_check(site: Path, package: Path) -> None:
    django_admin(site, "migrate", "--noinput", "-v", "0")
    shipped = sorted(p.stem for p in (package / "migrations").glob("0*.py"))
    shown = django_admin(site, "showmigrations", PACKAGE)
    applied = re.findall(r"\[X\] (\w+)", shown)
    check(shipped and applied == shipped, f"migrations applied {applied}, shipped {shipped}")
    # The models and the shipped migrations agree: no migration left to make.
    django_admin(site, "makemigrations", "--check", "--dry-run", PACKAGE)
    output = django_admin(site, "check")
    check("System check identified" in output, output)  # and no error: django-admin exits 0
    print(f"wheel-smoke: migrate ({len(shipped)} migrations), makemigrations --check, check: ok")


def collect_static(site: Path, directory: Path, package: Path) -> None:
    django_admin(site, "collectstatic", "--noinput", "-v", "0")
    collected = directory / "static"
    check((collected / "admin" / "css" / "base.css").is_file(), "the admin's static files")
    ours = package / "static"
    files = [p.relative_to(ours) for p in ours.rglob("*") if p.is_file()]
    for relative in files:
        check((collected / relative).is_file(), f"collectstatic did not collect {relative}")
    print(f"wheel-smoke: collectstatic: {len(files)} static file(s) of {PACKAGE} collected")


def serve(site: Path) -> None:
    """The admin screens, the login-link pages and the login endpoint, through the test client."""
    os.environ.update(site_env(site))
    sys.path.insert(0, str(site))
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.test.utils import setup_test_environment

    setup_test_environment()
    admin_user = get_user_model().objects.create_superuser("admin", "a@example.com", PASSWORD)
    staff = Client()
    staff.force_login(admin_user)

    add = staff.get("/admin/cocart_jwt/token/add/")
    page = add.content.decode()
    check(add.status_code == 200, f"admin add page: {add.status_code}")
    check(".cocart-jwt-toolbar" in page, "admin add page without the app's change_form.html")
    data = {"user": admin_user.pk, "lifetime": "24h", "refreshable": "on", "claims": ""}
    issued = staff.post("/admin/cocart_jwt/token/add/", {**data, "description": "smoke"})
    page = issued.content.decode()
    check(issued.status_code == 200, f"admin create: {issued.status_code}")
    check('id="cocart-jwt-access-token"' in page, "no token shown: issued.html missing?")
    link = re.search(r'id="cocart-jwt-login-link"[^>]*value="([^"]*)"', page)
    check(link, "no login link shown: issued.html missing?")
    check(staff.get("/admin/cocart_jwt/token/").status_code == 200, "admin list")

    visitor = Client()
    url = urlsplit(html.unescape(link.group(1)))  # type: ignore[union-attr]
    confirm = visitor.get(f"{url.path}?{url.query}")
    page = confirm.content.decode()
    check(confirm.status_code == 200, f"login-link page: {confirm.status_code}")
    check('name="robots"' in page and 'name="token"' in page, "login_link_confirm.html/base.html")
    refused = visitor.get("/api/auth/login-link/", {"token": "not-a-link"})
    check(refused.status_code >= 400, f"a bad login link: {refused.status_code}")
    check('class="status"' in refused.content.decode(), "login_link_error.html missing?")

    login = visitor.post(
        "/api/auth/login/",
        json.dumps({"username": "admin", "password": PASSWORD}),
        content_type="application/json",
    )
    check(login.status_code == 200, f"login: {login.status_code} {login.content[:200]!r}")
    check(login.json()["token_type"] == "Bearer", "no token pair")  # noqa: S105 - not a secret
    print("wheel-smoke: admin add/create/list, login-link confirm/error pages, login: ok")


def smoke_site(checkout: Path) -> None:
    package = installed_package(checkout)
    with tempfile.TemporaryDirectory(prefix="cocart-jwt-site-") as name:
        directory = Path(name)
        site = make_site(directory)
        migrate_and_check(site, package)
        collect_static(site, directory, package)
        serve(site)


def main(argv: list[str]) -> None:
    if argv[:1] == ["contents"] and len(argv) == 3:
        contents(Path(argv[1]), Path(argv[2]))
    elif argv[:1] == ["site"] and len(argv) == 2:
        smoke_site(Path(argv[1]))
    else:
        fail("usage: wheel_smoke.py contents SRC DIST | site CHECKOUT")


if __name__ == "__main__":
    main(sys.argv[1:])
