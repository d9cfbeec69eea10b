"""DPoP proof validation (RFC 9449 section 4.3), the claims: ``jti``, ``htm``, ``htu`` (with
Django's proxy settings), the ``iat`` window and ``ath``; and hostile proofs, which are refused
with ``InvalidDPoPProof`` and nothing else. The proof itself: tests/test_dpop_proofs.py.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import time_machine
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from cocart_jwt.dpop import InvalidDPoPProof, verify_proof
from tests.dpop_clients import (
    PATH,
    URL,
    accepted,
    assert_refused,
    b64,
    compact,
    jti_of,
    proof,
    request,
)

Refuse = Callable[..., InvalidDPoPProof]
FROZEN = datetime(2027, 1, 15, 12, 0, 0, tzinfo=UTC)
T = int(FROZEN.timestamp())
HTU_MISMATCH = "htu does not match the request URI (scheme, host, port or path)"
TOO_OLD = "iat is older than DPOP_PROOF_LIFETIME (and LEEWAY)"
IN_THE_FUTURE = "iat is in the future (beyond LEEWAY)"


@pytest.fixture
def refuse(caplog: pytest.LogCaptureFixture) -> Callable[..., InvalidDPoPProof]:
    return functools.partial(assert_refused, caplog)


# -- check 3: the required claims ---------------------------------------------------------


@pytest.mark.parametrize(
    ("claim", "reason"),
    [
        ("jti", "jti claim missing, empty, longer than 255 or unprintable"),
        ("htm", "htm claim missing or not a string"),
        ("htu", "htu claim missing or not a string"),
        ("iat", "iat claim missing or not an integer"),
    ],
)
def test_a_proof_missing_a_required_claim_is_refused(
    refuse: Refuse, claim: str, reason: str
) -> None:
    refuse(proof(drop=(claim,)), reason)


@pytest.mark.parametrize("iat", ["1800000000", 1.5, True, None, [1]])
def test_an_iat_that_is_not_an_integer_is_refused(refuse: Refuse, iat: Any) -> None:
    refuse(proof(claims={"iat": iat}), "iat claim missing or not an integer")


@pytest.mark.parametrize("jti", ["", "x" * 256, "line\nbreak", "nul\x00", 12345, None])
def test_a_jti_that_is_empty_long_unprintable_or_no_string_is_refused(
    refuse: Refuse, jti: Any
) -> None:
    refuse(proof(claims={"jti": jti}), "jti claim missing, empty, longer than 255 or unprintable")


@pytest.mark.parametrize("jti", ["x", "x" * 254 + "é"])
def test_a_jti_of_1_to_255_characters_is_accepted(jti: str) -> None:
    assert accepted(proof(claims={"jti": jti})).jti == jti


@pytest.mark.parametrize("name", ["htm", "htu"])
def test_an_htm_or_htu_that_is_no_string_is_refused(refuse: Refuse, name: str) -> None:
    refuse(proof(claims={name: ["GET"]}), f"{name} claim missing or not a string")


# -- check 8: htm -----------------------------------------------------------------------


@pytest.mark.parametrize(("htm", "method"), [("POST", "GET"), ("get", "GET"), ("GET", "DELETE")])
def test_an_htm_that_is_not_the_request_method_is_refused(
    refuse: Refuse, htm: str, method: str
) -> None:
    refuse(None, "htm does not match the request method", req=request(proof(htm=htm), method))


def test_a_post_proof_is_accepted_on_a_post() -> None:
    assert accepted(proof(htm="POST"), method="POST")


# -- check 9: htu -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "htu",
    [
        "http://evil.example/api/orders/",  # host
        "https://testserver/api/orders/",  # scheme
        "http://testserver/api/orders/1/",  # path
        "http://testserver/api/orders",  # path (no slash)
        "http://testserver:8080/api/orders/",  # port
        "http://testserver.evil.example/api/orders/",
        "/api/orders/",  # not absolute
        "http://user@testserver/api/orders/",  # userinfo
        "ftp://testserver/api/orders/",
        "http://testserver:99999/api/orders/",  # no port
        "http://[::1/api/orders/",
        "",
        "http:///api/orders/",  # no host
        "ftp://testserver:21/api/orders/",  # another scheme, with a port
    ],
)
def test_an_htu_that_is_not_the_request_uri_is_refused(refuse: Refuse, htu: str) -> None:
    refuse(proof(htu=htu), HTU_MISMATCH)


@pytest.mark.parametrize(
    "htu",
    [
        "http://testserver/api/orders/?page=9",
        "http://testserver/api/orders/#top",
        "http://testserver/api/orders/?page=2#top",
        "HTTP://TestServer/api/orders/",
        "http://testserver:80/api/orders/",
    ],
)
def test_query_fragment_case_and_default_port_do_not_matter(htu: str) -> None:
    assert accepted(proof(htu=htu), path=f"{PATH}?page=2")


def test_the_request_query_is_left_out() -> None:
    assert accepted(proof(htu=URL), path=f"{PATH}?page=2&sort=-date")


def test_a_query_in_htu_does_not_hide_another_path(refuse: Refuse) -> None:
    value = proof(htu="http://testserver/api/other/?next=/api/orders/")

    refuse(None, HTU_MISMATCH, req=request(value))


def test_https_default_port_and_host_case_are_normalised() -> None:
    assert accepted(proof(htu="https://TESTSERVER:443/api/orders/"), secure=True)


@pytest.mark.parametrize(
    ("path", "htu_path"),
    [
        ("/api/caf%C3%A9/", "/api/caf%c3%a9/"),  # percent-encoding case
        ("/api/~user/", "/api/%7Euser/"),  # an unreserved character encoded
        ("/api/a%20b/", "/api/a%20b/"),
        ("/", ""),  # an empty path is /
    ],
)
def test_equivalent_paths_match(path: str, htu_path: str) -> None:
    assert accepted(proof(htu=f"http://testserver{htu_path}"), path=path)


def test_an_ipv6_host_and_port_match() -> None:
    value = proof(htu="http://[::1]:8000/api/orders/")

    assert accepted(value, HTTP_HOST="[::1]:8000")


@pytest.mark.parametrize(
    ("host", "htu"),
    [
        ("[::1]", "http://[::2]/api/orders/"),
        ("[::1]:8000", "http://[::1:8000]/api/orders/"),  # the same text without brackets
        ("testserver:8000", "http://evil.example:8000/api/orders/"),
        ("testserver:8000", "http://testserver:8001/api/orders/"),
    ],
)
def test_another_host_on_a_port_or_in_brackets_is_refused(
    refuse: Refuse, host: str, htu: str
) -> None:
    refuse(None, HTU_MISMATCH, req=request(proof(htu=htu), HTTP_HOST=host))


def test_a_host_on_another_port_matches_with_that_port() -> None:
    assert accepted(proof(htu="http://testserver:8000/api/orders/"), HTTP_HOST="testserver:8000")


def test_a_percent_encoding_that_is_not_of_an_unreserved_character_is_kept(
    refuse: Refuse,
) -> None:
    """%20 is not decoded: an htu with a raw space (no URI at all) does not match it."""
    value = proof(htu="http://testserver/api/a b/")

    refuse(None, HTU_MISMATCH, req=request(value, path="/api/a%20b/"))


def test_a_host_outside_allowed_hosts_is_djangos_400(settings: Any) -> None:
    from django.core.exceptions import DisallowedHost

    settings.ALLOWED_HOSTS = ["shop.example"]

    with pytest.raises(DisallowedHost):
        verify_proof(
            request(proof(htu="http://evil.example/api/orders/"), HTTP_HOST="evil.example")
        )


class TestBehindAProxy:
    """Django's proxy settings, and only they, decide the scheme and host htu must name."""

    HTU = "https://shop.example/api/orders/"
    INTERNAL = "http://app.internal:8000/api/orders/"  # what the proxy asks for
    FORWARDED = {
        "HTTP_HOST": "app.internal:8000",
        "HTTP_X_FORWARDED_PROTO": "https",
        "HTTP_X_FORWARDED_HOST": "shop.example",
    }

    def test_forwarded_scheme_and_host_are_used_when_django_trusts_them(
        self, settings: Any
    ) -> None:
        settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
        settings.USE_X_FORWARDED_HOST = True

        assert accepted(proof(htu=self.HTU), **self.FORWARDED)

    def test_the_internal_scheme_and_host_are_refused_behind_a_trusted_proxy(
        self, settings: Any, refuse: Refuse
    ) -> None:
        settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
        settings.USE_X_FORWARDED_HOST = True

        refuse(None, HTU_MISMATCH, req=request(proof(htu=self.INTERNAL), **self.FORWARDED))

    def test_a_forwarded_scheme_is_ignored_without_secure_proxy_ssl_header(
        self, settings: Any, refuse: Refuse
    ) -> None:
        settings.USE_X_FORWARDED_HOST = True
        value = proof(htu=self.HTU)

        refuse(None, HTU_MISMATCH, req=request(value, **self.FORWARDED))
        assert accepted(proof(htu="http://shop.example/api/orders/"), **self.FORWARDED)

    def test_a_forwarded_host_is_ignored_without_use_x_forwarded_host(
        self, settings: Any, refuse: Refuse
    ) -> None:
        settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
        value = proof(htu=self.HTU)

        refuse(None, HTU_MISMATCH, req=request(value, **self.FORWARDED))
        assert accepted(proof(htu="https://app.internal:8000/api/orders/"), **self.FORWARDED)


# -- check 11: the iat window --------------------------------------------------------------


@pytest.fixture
def frozen() -> Iterator[None]:
    with time_machine.travel(FROZEN, tick=False):
        yield


@pytest.mark.usefixtures("frozen")
class TestIatWindow:
    """[now - DPOP_PROOF_LIFETIME - LEEWAY, now + LEEWAY], both ends included."""

    def test_the_edges_of_the_window_are_accepted(self) -> None:
        assert accepted(proof(iat=T - 60))
        assert accepted(proof(iat=T))

    def test_one_second_older_than_the_lifetime_is_refused(self, refuse: Refuse) -> None:
        refuse(proof(iat=T - 61), TOO_OLD)

    def test_one_second_in_the_future_is_refused_without_leeway(self, refuse: Refuse) -> None:
        refuse(proof(iat=T + 1), IN_THE_FUTURE)

    def test_leeway_widens_both_ends(self, refuse: Refuse, settings: Any) -> None:
        settings.COCART_JWT = {**settings.COCART_JWT, "LEEWAY": 5}

        assert accepted(proof(iat=T + 5))
        assert accepted(proof(iat=T - 65))
        refuse(proof(iat=T + 6), IN_THE_FUTURE)
        refuse(proof(iat=T - 66), TOO_OLD)

    def test_the_lifetime_is_the_setting(self, refuse: Refuse, settings: Any) -> None:
        settings.COCART_JWT = {**settings.COCART_JWT, "DPOP_PROOF_LIFETIME": 30}

        assert accepted(proof(iat=T - 30))
        refuse(proof(iat=T - 31), TOO_OLD)

    def test_a_proof_far_in_the_past_or_future_is_refused(self, refuse: Refuse) -> None:
        refuse(proof(iat=0), TOO_OLD)
        refuse(proof(iat=-(2**63)), TOO_OLD)
        refuse(proof(iat=2**70), IN_THE_FUTURE)


# -- check 12: ath ------------------------------------------------------------------------

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"


def ath(token: str) -> str:
    return b64(hashlib.sha256(token.encode("ascii")).digest())


def test_a_proof_with_the_hash_of_the_access_token_is_accepted() -> None:
    value = proof(claims={"ath": ath(TOKEN)})

    assert verify_proof(request(value), access_token=TOKEN).jti == jti_of(value)


def test_ath_missing_with_an_access_token_is_refused(refuse: Refuse) -> None:
    refuse(proof(), "ath claim missing or not a string, with an access token", access_token=TOKEN)


@pytest.mark.parametrize("value", [ath(TOKEN + "x"), ath(TOKEN)[:-1], "", "é" * 43, 1])
def test_a_wrong_ath_is_refused(refuse: Refuse, value: Any) -> None:
    reason = (
        "ath claim missing or not a string, with an access token"
        if value == 1
        else "ath is not the hash of the access token"
    )

    refuse(proof(claims={"ath": value}), reason, access_token=TOKEN)


def test_ath_is_ignored_without_an_access_token() -> None:
    assert accepted(proof(claims={"ath": "not the hash of anything"}))


def test_a_non_ascii_access_token_is_refused(refuse: Refuse) -> None:
    refuse(proof(claims={"ath": ath(TOKEN)}), "access token is not ASCII", access_token="tøken")


# -- whatever comes in: InvalidDPoPProof, never another exception -----------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)
HEADER_NAMES = st.sampled_from(["typ", "alg", "jwk", "crit", "kid"])
JWK_NAMES = st.sampled_from(["kty", "crv", "x", "y", "n", "e", "d", "alg"])


@hypothesis_settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    header=st.dictionaries(HEADER_NAMES, JSON),
    jwk=st.dictionaries(JWK_NAMES, JSON | st.sampled_from(["EC", "RSA", "OKP", "P-256", "AQAB"])),
    claims=st.dictionaries(st.sampled_from(["jti", "htm", "htu", "iat", "ath", "nonce"]), JSON),
    alg=st.sampled_from(["ES256", "PS256", "EdDSA", "none", "HS256", "RS512"]),
)
def test_hostile_proofs_are_refused_cleanly(
    header: dict[str, Any], jwk: dict[str, Any], claims: dict[str, Any], alg: str
) -> None:
    shaped = {"typ": "dpop+jwt", "alg": alg, "jwk": jwk, **header}
    with pytest.raises(InvalidDPoPProof):
        verify_proof(request(compact(shaped, claims)), access_token=TOKEN, nonce_required=True)


@hypothesis_settings(max_examples=150, deadline=None)
@given(value=st.text(max_size=300))
def test_any_header_text_is_refused_cleanly(value: str) -> None:
    with pytest.raises(InvalidDPoPProof):
        verify_proof(request(value))
