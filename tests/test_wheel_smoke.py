"""The checker of .ci/wheel-smoke refuses a wheel or an sdist that lacks a file of the package.

CI builds the real wheel and runs a site on it (``.ci/wheel-smoke``, from ``.ci/run``); these
tests make sure the comparison it starts with cannot pass by accident, on hand-made archives.
"""

from __future__ import annotations

import importlib.util
import io
import tarfile
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_FILES = [
    "cocart_jwt/__init__.py",
    "cocart_jwt/py.typed",
    "cocart_jwt/migrations/__init__.py",
    "cocart_jwt/migrations/0001_initial.py",
    "cocart_jwt/migrations/0002_more.py",
    "cocart_jwt/management/commands/jwt.py",
    "cocart_jwt/templates/cocart_jwt/base.html",
    "cocart_jwt/locale/fr/LC_MESSAGES/django.mo",
]


@pytest.fixture(scope="module")
def wheel_smoke() -> ModuleType:
    spec = importlib.util.spec_from_file_location("wheel_smoke", ROOT / ".ci" / "wheel_smoke.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_source(directory: Path) -> Path:
    src = directory / "src"
    for name in PACKAGE_FILES:
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_text("x")
    pycache = src / "cocart_jwt" / "__pycache__"
    pycache.mkdir()
    (pycache / "__init__.cpython-311.pyc").write_text("bytecode is not shipped")
    return src


def make_dist(directory: Path, wheel_files: list[str], sdist_files: list[str]) -> Path:
    dist = directory / "dist"
    dist.mkdir()
    with zipfile.ZipFile(dist / "django_cocart_jwt-0.1.0-py3-none-any.whl", "w") as wheel:
        for name in wheel_files:
            wheel.writestr(name, "x")
        wheel.writestr("django_cocart_jwt-0.1.0.dist-info/METADATA", "x")
    with tarfile.open(dist / "django_cocart_jwt-0.1.0.tar.gz", "w:gz") as sdist:
        for name in sdist_files:
            info = tarfile.TarInfo(f"django_cocart_jwt-0.1.0/{name}")
            info.size = 1
            sdist.addfile(info, io.BytesIO(b"x"))
    return dist


def test_a_complete_wheel_and_sdist_pass(wheel_smoke, tmp_path, capsys):
    src = make_source(tmp_path)
    dist = make_dist(tmp_path, PACKAGE_FILES, [*PACKAGE_FILES, "pyproject.toml"])

    wheel_smoke.contents(src, dist)

    assert "8 files of cocart_jwt, as the source" in capsys.readouterr().out


@pytest.mark.parametrize(
    "left_out",
    [
        "cocart_jwt/templates/cocart_jwt/base.html",
        "cocart_jwt/locale/fr/LC_MESSAGES/django.mo",
        "cocart_jwt/py.typed",
        "cocart_jwt/migrations/0002_more.py",
    ],
)
@pytest.mark.parametrize("archive", ["wheel", "sdist"])
def test_a_file_left_out_of_the_wheel_or_the_sdist_fails(
    wheel_smoke, tmp_path, capsys, left_out, archive
):
    src = make_source(tmp_path)
    short = [name for name in PACKAGE_FILES if name != left_out]
    dist = make_dist(
        tmp_path,
        short if archive == "wheel" else PACKAGE_FILES,
        short if archive == "sdist" else PACKAGE_FILES,
    )

    with pytest.raises(SystemExit) as exited:
        wheel_smoke.contents(src, dist)

    assert exited.value.code == 1
    error = capsys.readouterr().err
    assert f"not in the {archive}" in error and left_out in error
