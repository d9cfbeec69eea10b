"""The README's "Quick start for a site", pasted into a new site as a newcomer does.

``django-admin startproject`` makes a site in a temporary directory; the README's settings
and urls snippets are appended to its settings.py and urls.py as they are written; the
README's ``manage.py`` lines run (``jwt keygen`` prints the key the rest runs with); ``check``
is clean, and a login answers a token pair whose access token the site accepts. The quick
start in docs/quickstart.md must carry the same snippets, word for word.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
SH_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.S | re.M)

# Run by `manage.py shell` in the new site: one user, a login, the access token validated.
LOGIN_SCRIPT = """
import json
from django.contrib.auth import get_user_model
from django.test import Client
from django.test.utils import setup_test_environment

setup_test_environment()  # the test client's host, testserver, is allowed
get_user_model().objects.create_user("alice", password="correct horse battery staple")
client = Client()
login = client.post(
    "/api/auth/login/",
    {"username": "alice", "password": "correct horse battery staple"},
    content_type="application/json",
)
pair = login.json()
validate = client.post(
    "/api/auth/validate/", HTTP_AUTHORIZATION="Bearer " + pair.get("access_token", "")
)
print(json.dumps({"login": [login.status_code, pair], "validate": validate.status_code}))
"""


def quick_start() -> str:
    readme = (ROOT / "README.md").read_text()
    return readme.split("## Quick start for a site", 1)[1].split("\n## ", 1)[0]


def snippet(text: str, first_line: str) -> str:
    """The ```python block of ``text`` whose first line starts with ``first_line``."""
    blocks = [b for b in PYTHON_BLOCK.findall(text) if b.startswith(first_line)]
    assert len(blocks) == 1, f"expected one python block starting {first_line!r}: {blocks}"
    return blocks[0]


def manage_commands() -> list[list[str]]:
    """The README's ``python manage.py ...`` lines, without their comments."""
    commands = []
    for block in SH_BLOCK.findall(quick_start()):
        for line in block.splitlines():
            words = line.split("#", 1)[0].split()
            if words[:2] == ["python", "manage.py"]:
                commands.append(words[2:])
    return commands


def site_env(**extra: str) -> dict[str, str]:
    """Our environment without the suite's settings; this checkout's cocart_jwt first."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DJANGO_", "COCART_JWT_"))
        and name not in ("DATABASE_URL", "REDIS_URL", "PYTHONPATH")
    }
    env.update(PYTHONPATH=str(ROOT), **extra)
    return env


def run(site: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(  # noqa: S603 - our interpreter and arguments
        [sys.executable, *args],
        cwd=site,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, f"{' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result


def test_the_readme_and_the_quick_start_page_carry_the_same_snippets() -> None:
    page = (ROOT / "docs" / "quickstart.md").read_text()

    for first_line in ("# settings.py", "# urls.py"):
        assert snippet(quick_start(), first_line) == snippet(page, first_line)
    settings = snippet(quick_start(), "# settings.py")
    assert 'COCART_JWT = {"SIGNING_KEY": "env:COCART_JWT_SIGNING_KEY"}' in settings
    assert manage_commands() == [["jwt", "keygen"], ["migrate"]]


@pytest.mark.skipif(
    sys.prefix == sys.base_prefix, reason="the new site runs with the suite's virtualenv"
)
def test_the_snippets_pasted_into_a_new_project_give_a_working_login(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    env = site_env()
    run(site, env, "-m", "django", "startproject", "mysite", str(site))
    for name, first_line in (("settings.py", "# settings.py"), ("urls.py", "# urls.py")):
        module = site / "mysite" / name
        module.write_text(module.read_text() + "\n" + snippet(quick_start(), first_line))
    keygen, migrate = manage_commands()

    printed = run(site, env, "manage.py", *keygen).stdout
    key = re.search(r"^COCART_JWT_SIGNING_KEY=(\S+)$", printed, re.M)
    assert key, printed
    env["COCART_JWT_SIGNING_KEY"] = key.group(1)
    checked = run(site, env, "manage.py", "check")
    run(site, env, "manage.py", *migrate, "--noinput")
    answer = run(site, env, "manage.py", "shell", "-c", LOGIN_SCRIPT).stdout

    assert "System check identified no issues" in checked.stdout, checked.stdout
    result = json.loads(answer.strip().splitlines()[-1])
    status, pair = result["login"]
    assert status == 200, pair
    assert pair["token_type"] == "Bearer"
    assert pair["user"] == {"id": 1, "username": "alice"}
    assert pair["access_token"].count(".") == 2 and pair["refresh_token"]
    assert result["validate"] == 200
