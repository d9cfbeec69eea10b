"""Dependency floors: none admits a release with a published advisory, and what runs meets them."""

from __future__ import annotations

import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"

# (package, a release the advisory affects, the advisory). Each floor must refuse the release.
VULNERABLE_RELEASES = [
    ("django", "5.2.7", "CVE-2025-64459: SQL injection via _connector"),
    ("django", "5.2.8", "CVE-2025-13372: SQL injection in FilteredRelation aliases"),
    ("django", "5.2.10", "CVE-2026-1287, CVE-2026-1312: SQL injection"),
    ("django", "5.2.17", "CVE-2026-84429: DoS in parse_header_parameters()"),
    ("django", "6.0", "CVE-2026-1287, CVE-2026-1312: SQL injection"),
    ("django", "6.0.8", "CVE-2026-84429: DoS in parse_header_parameters()"),
    ("djangorestframework", "3.15.1", "CVE-2024-21520: XSS in the browsable API"),
    ("djangorestframework", "3.18.1", "CVE-2026-114137"),
    ("cryptography", "42.0.3", "CVE-2024-26130: NULL dereference in PKCS#12"),
    ("cryptography", "44.0.0", "CVE-2024-12797: OpenSSL in the wheels"),
    ("cryptography", "49.0.0", "CVE-2026-69247: PKCS#7 Bleichenbacher oracle"),
    ("pyjwt", "2.14.0", "CVE-2026-101918 (GHSA-42vr-xj54-vc7v)"),
    ("redis", "4.5.3", "CVE-2023-28859: async replies to the wrong request"),
]


def requirements() -> list[Requirement]:
    """Every requirement of the package: the dependencies and the ``redis`` extra."""
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    lines = project["dependencies"] + project["optional-dependencies"]["redis"]
    return [Requirement(line) for line in lines]


def requirements_of(package: str) -> list[Requirement]:
    found = [r for r in requirements() if canonicalize_name(r.name) == package]
    assert found, f"pyproject.toml names no {package}"
    return found


@pytest.mark.parametrize(
    ("package", "release", "advisory"),
    VULNERABLE_RELEASES,
    ids=[f"{package}-{release}" for package, release, _ in VULNERABLE_RELEASES],
)
def test_no_floor_admits_a_release_with_an_advisory(
    package: str, release: str, advisory: str
) -> None:
    for requirement in requirements_of(package):
        assert not requirement.specifier.contains(release, prereleases=True), (
            f"{requirement} admits {package} {release} ({advisory})"
        )


@pytest.mark.parametrize("requirement", requirements(), ids=str)
def test_the_installed_version_meets_its_floor(requirement: Requirement) -> None:
    if requirement.marker is not None and not requirement.marker.evaluate():
        pytest.skip(f"not for this Python: {requirement}")
    try:
        installed = version(requirement.name)
    except PackageNotFoundError:
        pytest.skip(f"{requirement.name} is not installed")
    assert requirement.specifier.contains(installed, prereleases=True), (
        f"{requirement.name} {installed} is installed, {requirement} is required"
    )
