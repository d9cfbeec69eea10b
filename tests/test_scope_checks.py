"""Checks of personal tokens and RFC 9068 claims: E019 SCOPES, E020 PAT_MAX_LIFETIME /
MAX_PATS_PER_USER / CLIENT_ID, W011 ISSUER or AUDIENCE unset."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.checks import run_checks

from tests.test_checks import BASE, configure, shared_caches  # noqa: F401 (a fixture)


def messages(settings: Any, **cocart_jwt: Any) -> list[Any]:
    configure(settings, **cocart_jwt)
    return [m for m in run_checks() if m.id and m.id.startswith("cocart_jwt.")]


def ids(settings: Any, **cocart_jwt: Any) -> list[str]:
    return sorted(m.id for m in messages(settings, **cocart_jwt))


@pytest.mark.usefixtures("shared_caches")
class TestScopes:
    def test_named_scopes_are_clean(self, settings: Any) -> None:
        assert ids(settings, SCOPES={"orders:read": "Read orders", "cart:write": "Cart"}) == []

    @pytest.mark.parametrize(
        "scopes",
        [
            ["orders:read"],
            {"orders read": "a space"},
            {'say"': "a quote"},
            {"back\\slash": "a backslash"},
            {"": "empty"},
            {"é": "not ASCII"},
            {"x" * 65: "too long"},
            {1: "not a string"},
            {"orders:read": None},
        ],
        ids=["list", "space", "quote", "backslash", "empty", "non-ascii", "long", "int", "no-text"],
    )
    def test_bad_scopes_are_e019_with_a_hint(self, settings: Any, scopes: Any) -> None:
        found = messages(settings, SCOPES=scopes)
        assert [m.id for m in found] == ["cocart_jwt.E019"]
        assert "SCOPES" in found[0].msg
        assert "products:read" in found[0].hint


@pytest.mark.usefixtures("shared_caches")
class TestLimits:
    @pytest.mark.parametrize("lifetime", [0, -1])
    def test_a_personal_maximum_not_positive_is_e020(self, settings: Any, lifetime: int) -> None:
        found = messages(settings, PAT_MAX_LIFETIME=lifetime)
        assert "cocart_jwt.E020" in [m.id for m in found]

    @pytest.mark.parametrize("limit", [0, -3, True, "20", 2.5])
    def test_a_bad_personal_token_limit_is_e020(self, settings: Any, limit: Any) -> None:
        found = messages(settings, MAX_PATS_PER_USER=limit)
        assert [m.id for m in found] == ["cocart_jwt.E020"]
        assert "MAX_PATS_PER_USER" in found[0].msg

    def test_no_personal_token_limit_is_allowed(self, settings: Any) -> None:
        assert ids(settings, MAX_PATS_PER_USER=None) == []

    @pytest.mark.parametrize("client_id", ["", None, 7, "line\nbreak"])
    def test_a_bad_client_id_is_e020(self, settings: Any, client_id: Any) -> None:
        found = messages(settings, CLIENT_ID=client_id)
        assert [m.id for m in found] == ["cocart_jwt.E020"]
        assert "CLIENT_ID" in found[0].msg


@pytest.mark.usefixtures("shared_caches")
@pytest.mark.parametrize(
    ("unset", "named"),
    [
        ({"ISSUER": None}, "ISSUER is"),
        ({"AUDIENCE": None}, "AUDIENCE is"),
        ({"ISSUER": None, "AUDIENCE": ""}, "ISSUER and AUDIENCE are"),
    ],
)
def test_an_unset_issuer_or_audience_is_w011(settings: Any, unset: dict, named: str) -> None:
    found = messages(settings, **unset)
    assert [m.id for m in found] == ["cocart_jwt.W011"]
    assert f"COCART_JWT {named} not set" in found[0].msg
    assert "RFC 9068" in found[0].msg
    assert not found[0].is_serious()
