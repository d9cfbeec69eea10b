"""DPoP: replay (a proof's jti, once per key, in the shared cache), a failing cache, the jti's
retention, server nonces (RFC 9449 section 8), RFC 7638 thumbprints, the challenge header and
the E021 check. Proof checks: tests/test_dpop_proofs.py and tests/test_dpop_claims.py; two
processes: tests/test_dpop_processes.py.
"""

from __future__ import annotations

import hashlib
import json
import logging
from base64 import urlsafe_b64decode
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
import time_machine
from django.core.cache import caches
from django.core.checks import run_checks
from django.core.checks.messages import CheckMessage

from cocart_jwt import dpop
from cocart_jwt.dpop import (
    InvalidDPoPProof,
    UseDPoPNonce,
    jwk_thumbprint,
    new_nonce,
    verify_proof,
    www_authenticate,
)
from cocart_jwt.keys import derive_kid
from cocart_jwt.settings import jwt_settings
from tests.dpop_clients import DEFAULT_ALGORITHMS, b64, private_key, proof, public_jwk, request

FROZEN = datetime(2027, 1, 15, 12, 0, 0, tzinfo=UTC)
T = int(FROZEN.timestamp())


@pytest.fixture(autouse=True)
def _no_outage_carried_over() -> Iterator[None]:
    """The replay cache's outage log is per process: each test starts with it quiet."""
    dpop.replay_cache.failing = False
    yield
    dpop.replay_cache.failing = False


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="cocart_jwt")
    return caplog


@pytest.fixture
def locmem(settings: Any) -> Any:
    """Replay in the local-memory cache, whose expiry follows time_machine's clock."""
    settings.COCART_JWT = {**settings.COCART_JWT, "CACHE": "locmem"}
    cache = caches["locmem"]
    cache.clear()
    return cache


def refusal(value: str, **kwargs: Any) -> InvalidDPoPProof:
    with pytest.raises(InvalidDPoPProof) as caught:
        verify_proof(request(value), **kwargs)
    return caught.value


# -- replay -------------------------------------------------------------------------------


def test_a_proof_is_accepted_once(logs: pytest.LogCaptureFixture) -> None:
    value = proof()
    first = verify_proof(request(value))

    refused = refusal(value)

    assert refused.error == "invalid_dpop_proof"
    assert "DPoP proof refused: jti already used with this key (a replayed proof)" in logs.text
    assert first.jti not in logs.text and value.split(".")[1] not in logs.text


def test_a_replay_on_another_url_with_the_same_jti_is_refused() -> None:
    """The jti is claimed per key, whatever the request: a second proof with the same jti,
    signed again for another method, is a replay too."""
    assert verify_proof(request(proof(claims={"jti": "reused-jti-1"})))
    again = proof(htm="POST", claims={"jti": "reused-jti-1"})

    with pytest.raises(InvalidDPoPProof, match="replayed"):
        verify_proof(request(again, "POST"))


def test_the_same_jti_under_another_key_is_another_proof() -> None:
    assert verify_proof(request(proof("ES256", claims={"jti": "shared-jti-2"})))

    assert verify_proof(request(proof("EdDSA", claims={"jti": "shared-jti-2"})))


def test_a_refused_proof_does_not_spend_its_jti() -> None:
    value = proof(claims={"ath": "wrong"})
    assert "ath" in str(refusal(value, access_token="some.access.token"))

    assert verify_proof(request(value))  # no token this time: ath is ignored, jti unspent


def test_the_jti_is_claimed_in_the_cache_named_by_cache(locmem: Any) -> None:
    key = private_key("ES256")
    accepted = verify_proof(request(proof(key=key, claims={"jti": "where-3"})))

    name = "cocart_jwt:{dpop:" + hashlib.sha256(f"{accepted.jkt}:where-3".encode()).hexdigest()
    assert locmem.get(name + "}") == 1
    assert caches["default"].get(name + "}") is None


@pytest.mark.redis
@pytest.mark.parametrize(("leeway", "ttl"), [(0, 61), (5, 71), (0.5, 62)])
def test_redis_keeps_the_jti_for_the_lifetime_twice_the_leeway_and_a_second(
    settings: Any, leeway: float, ttl: int
) -> None:
    settings.COCART_JWT = {**settings.COCART_JWT, "LEEWAY": leeway}
    accepted = verify_proof(request(proof()))

    name = (
        "cocart_jwt:{dpop:" + hashlib.sha256(f"{accepted.jkt}:{accepted.jti}".encode()).hexdigest()
    )
    # In milliseconds, less than a second gone since the SET: a TTL one second short fails.
    remaining = caches["default"].pttl(name + "}")  # type: ignore[attr-defined]
    assert ttl * 1000 - 1000 < remaining <= ttl * 1000


class TestRetention:
    """A proof dated LEEWAY ahead is in its window until LEEWAY + lifetime + LEEWAY from its
    first use: its jti must be kept that long, or it could be replayed at the end."""

    @pytest.fixture(autouse=True)
    def _leeway(self, settings: Any, locmem: Any) -> None:
        settings.COCART_JWT = {**settings.COCART_JWT, "LEEWAY": 5}

    def test_a_future_dated_proof_replayed_at_the_end_of_its_window_is_refused(
        self, logs: pytest.LogCaptureFixture
    ) -> None:
        with time_machine.travel(FROZEN, tick=False) as clock:
            value = proof(iat=T + 5)
            assert verify_proof(request(value))
            clock.move_to(FROZEN + timedelta(seconds=70))  # iat + lifetime + leeway: in window

            assert "replayed" in str(refusal(value))

            clock.move_to(FROZEN + timedelta(seconds=70, milliseconds=1))
            assert "iat is older" in str(refusal(value))

    def test_the_jti_is_forgotten_once_no_proof_could_use_it(self, locmem: Any) -> None:
        with time_machine.travel(FROZEN, tick=False) as clock:
            accepted = verify_proof(request(proof(iat=T + 5)))
            name = dpop.replay_key(accepted.jkt, accepted.jti)
            clock.move_to(FROZEN + timedelta(seconds=70, milliseconds=999))
            assert locmem.get(name) == 1

            clock.move_to(FROZEN + timedelta(seconds=71))
            assert locmem.get(name) is None


# -- a cache that fails refuses ------------------------------------------------------------


def test_an_unreachable_cache_refuses_the_proof(
    settings: Any, unreachable_cache: str, logs: pytest.LogCaptureFixture
) -> None:
    settings.COCART_JWT = {**settings.COCART_JWT, "CACHE": unreachable_cache}
    value = proof()

    refused = refusal(value)
    refusal(proof())

    assert refused.error == "invalid_dpop_proof"
    assert "DPoP proof refused: replay cache unavailable (ConnectionError)" in logs.text
    errors = [r.getMessage() for r in logs.records if r.levelno == logging.ERROR]
    assert errors == [  # once per outage, not per proof
        "DPoP replay cache unavailable (ConnectionError); every DPoP proof is refused until it "
        "is back"
    ]
    assert value.split(".")[1] not in logs.text

    settings.COCART_JWT = {**settings.COCART_JWT, "CACHE": "locmem"}
    assert verify_proof(request(proof()))
    assert "DPoP replay cache is back" in logs.text


def test_a_cache_that_swallows_its_errors_refuses_the_proof(
    settings: Any, unreachable_cache: str, logs: pytest.LogCaptureFixture
) -> None:
    settings.CACHES = {
        **settings.CACHES,
        "quiet": {
            **settings.CACHES[unreachable_cache],
            "OPTIONS": {**settings.CACHES[unreachable_cache]["OPTIONS"], "IGNORE_EXCEPTIONS": True},
        },
    }
    settings.COCART_JWT = {**settings.COCART_JWT, "CACHE": "quiet"}

    refused = refusal(proof())

    assert "replay cache gave no answer" in str(refused)
    assert "DPoP proof refused: replay cache gave no answer" in logs.text


def test_any_exception_of_the_cache_refuses_the_proof(
    locmem: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> bool:
        raise RuntimeError("disk full")

    monkeypatch.setattr(locmem, "add", broken)

    assert "replay cache unavailable (RuntimeError)" in str(refusal(proof()))


def test_a_cache_alias_missing_from_caches_refuses_the_proof(settings: Any) -> None:
    settings.COCART_JWT = {**settings.COCART_JWT, "CACHE": "no-such-alias"}

    assert "replay cache unavailable" in str(refusal(proof()))


# -- nonces -------------------------------------------------------------------------------


@pytest.fixture
def nonces_required(settings: Any) -> None:
    settings.COCART_JWT = {**settings.COCART_JWT, "DPOP_REQUIRE_NONCE": True}


def nonce_refusal(value: str, **kwargs: Any) -> UseDPoPNonce:
    with pytest.raises(UseDPoPNonce) as caught:
        verify_proof(request(value), **kwargs)
    assert caught.value.error == "use_dpop_nonce"
    return caught.value


def test_a_proof_without_a_nonce_is_refused_when_nonces_are_required(
    nonces_required: None, logs: pytest.LogCaptureFixture
) -> None:
    refused = nonce_refusal(proof())

    assert isinstance(refused, InvalidDPoPProof)
    assert "DPoP proof refused: nonce required but the proof has none" in logs.text


def test_a_proof_with_a_fresh_nonce_is_accepted(nonces_required: None) -> None:
    assert verify_proof(request(proof(claims={"nonce": new_nonce()})))


def test_the_argument_overrides_the_setting(settings: Any, nonces_required: None) -> None:
    assert verify_proof(request(proof()), nonce_required=False)
    settings.COCART_JWT = {**settings.COCART_JWT, "DPOP_REQUIRE_NONCE": False}
    nonce_refusal(proof(), nonce_required=True)


def test_nonces_are_not_required_by_default() -> None:
    assert jwt_settings.DPOP_REQUIRE_NONCE is False
    assert verify_proof(request(proof(claims={"nonce": "anything"})))


def test_a_refused_nonce_does_not_spend_the_jti(nonces_required: None) -> None:
    value = proof(claims={"nonce": "stale-or-forged"})
    nonce_refusal(value)

    assert verify_proof(request(value), nonce_required=False)


def forged(nonce: str) -> str:
    raw = bytearray(urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4)))
    raw[-1] ^= 0x01
    return b64(bytes(raw))


@pytest.mark.parametrize(
    ("nonce", "reason"),
    [
        ("abc", "nonce is not one of this server's (malformed)"),
        (12345, "nonce is not one of this server's (malformed)"),
        (["a"], "nonce is not one of this server's (malformed)"),
        ("*" * 54, "nonce is not one of this server's (not base64url)"),
        ("A" * 54, "nonce is not one of this server's (bad MAC)"),
    ],
)
def test_a_malformed_nonce_is_refused(
    nonces_required: None, logs: pytest.LogCaptureFixture, nonce: Any, reason: str
) -> None:
    nonce_refusal(proof(claims={"nonce": nonce}))

    assert f"DPoP proof refused: {reason}" in logs.text


def test_a_forged_nonce_is_refused(nonces_required: None, logs: pytest.LogCaptureFixture) -> None:
    nonce_refusal(proof(claims={"nonce": forged(new_nonce())}))

    assert "DPoP proof refused: nonce is not one of this server's (bad MAC)" in logs.text


def test_a_stale_nonce_given_a_new_time_is_refused(nonces_required: None) -> None:
    """The MAC covers the time: a client cannot make an old nonce fresh again."""
    with time_machine.travel(FROZEN, tick=False) as clock:
        made = urlsafe_b64decode(new_nonce() + "==")
        clock.move_to(FROZEN + timedelta(seconds=600))
        redated = b64((T + 600).to_bytes(8, "big") + made[8:])

        refused = nonce_refusal(proof(claims={"nonce": redated}))

    assert str(refused) == "nonce is not one of this server's (bad MAC)"


def test_a_nonce_of_another_secret_key_is_refused(settings: Any, nonces_required: None) -> None:
    settings.SECRET_KEY = "another-site-secret-key-0123456789-0123456789-0123456789"
    theirs = new_nonce()
    settings.SECRET_KEY = "this-site-secret-key-0123456789-0123456789-0123456789-01"

    assert "bad MAC" in str(nonce_refusal(proof(claims={"nonce": theirs})))


def test_a_nonce_made_before_secret_key_rotated_is_accepted(
    settings: Any, nonces_required: None
) -> None:
    old_secret = "the-old-secret-key-0123456789-0123456789-0123456789-0123"
    settings.SECRET_KEY = old_secret
    made = new_nonce()
    settings.SECRET_KEY = "the-new-secret-key-0123456789-0123456789-0123456789-0123"
    settings.SECRET_KEY_FALLBACKS = [old_secret]

    assert verify_proof(request(proof(claims={"nonce": made})))


def test_a_nonce_is_accepted_for_the_proof_lifetime_then_stale(nonces_required: None) -> None:
    with time_machine.travel(FROZEN, tick=False) as clock:
        made = new_nonce()
        clock.move_to(FROZEN + timedelta(seconds=60))
        assert verify_proof(request(proof(claims={"nonce": made})))

        clock.move_to(FROZEN + timedelta(seconds=61))
        assert str(nonce_refusal(proof(claims={"nonce": made}))) == "nonce is stale"


def test_a_nonce_from_the_future_is_stale(nonces_required: None) -> None:
    with time_machine.travel(FROZEN + timedelta(seconds=2), tick=False) as clock:
        made = new_nonce()
        clock.move_to(FROZEN)

        assert str(nonce_refusal(proof(claims={"nonce": made}))) == "nonce is stale"


def test_leeway_lets_a_nonce_of_a_server_slightly_ahead_through(
    settings: Any, nonces_required: None
) -> None:
    settings.COCART_JWT = {**settings.COCART_JWT, "LEEWAY": 5}
    with time_machine.travel(FROZEN + timedelta(seconds=5), tick=False) as clock:
        made = new_nonce()
        clock.move_to(FROZEN)
        assert verify_proof(request(proof(claims={"nonce": made})))

        clock.move_to(FROZEN + timedelta(seconds=70))
        assert verify_proof(request(proof(claims={"nonce": made})))
        clock.move_to(FROZEN + timedelta(seconds=71))
        nonce_refusal(proof(claims={"nonce": made}))


def test_a_nonce_is_url_safe_and_changes_with_time() -> None:
    with time_machine.travel(FROZEN, tick=False) as clock:
        first = new_nonce()
        clock.move_to(FROZEN + timedelta(seconds=1))
        second = new_nonce()

    assert first != second
    assert len(first) == 54 and set(first) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    )


# -- thumbprints (RFC 7638) -----------------------------------------------------------------

RFC_7638_KEY = {
    "kty": "RSA",
    "n": (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_B"
        "JECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW"
        "2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQ"
        "Fh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    ),
    "e": "AQAB",
    "alg": "RS256",
    "kid": "2011-04-29",
}


def test_the_rfc_7638_example_thumbprint() -> None:
    assert jwk_thumbprint(RFC_7638_KEY) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_the_rfc_8037_ed25519_thumbprint() -> None:
    key = {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}

    assert jwk_thumbprint(key) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


def manual_thumbprint(members: str) -> str:
    return b64(hashlib.sha256(members.encode()).digest())


@pytest.mark.parametrize("alg", ["ES256", "ES384", "ES512"])
def test_an_ec_thumbprint_is_that_of_the_key_ring_and_of_the_rfc_recipe(alg: str) -> None:
    public = private_key(alg).public_key()
    jwk = public_jwk(private_key(alg))
    numbers = public.public_numbers()
    size = (public.curve.key_size + 7) // 8
    x, y = (b64(value.to_bytes(size, "big")) for value in (numbers.x, numbers.y))

    assert jwt.PyJWK(jwk).key.public_numbers() == numbers  # PyJWT reads the same key
    expected = manual_thumbprint(f'{{"crv":"{jwk["crv"]}","kty":"EC","x":"{x}","y":"{y}"}}')
    assert jwk_thumbprint(jwk) == expected == derive_kid(alg, public)


@pytest.mark.parametrize("curve", ["EdDSA", "Ed448"])
def test_an_okp_thumbprint_follows_the_rfc_recipe(curve: str) -> None:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    public = private_key(curve).public_key()
    x = b64(public.public_bytes(Encoding.Raw, PublicFormat.Raw))
    jwk = public_jwk(private_key(curve))
    crv = "Ed25519" if curve == "EdDSA" else "Ed448"

    assert jwt.PyJWK(jwk, algorithm="EdDSA").key.public_bytes(
        Encoding.Raw, PublicFormat.Raw
    ) == public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    assert jwk_thumbprint(jwk) == manual_thumbprint(f'{{"crv":"{crv}","kty":"OKP","x":"{x}"}}')


def test_an_rsa_thumbprint_is_that_of_the_key_ring() -> None:
    key = private_key("RS256")

    assert jwk_thumbprint(public_jwk(key)) == derive_kid("RS256", key.public_key())


def test_other_members_and_their_order_do_not_change_a_thumbprint() -> None:
    jwk = public_jwk(private_key("ES256"))
    shuffled = dict(
        reversed(list({**jwk, "kid": "a", "use": "sig", "key_ops": ["verify"]}.items()))
    )

    assert jwk_thumbprint(shuffled) == jwk_thumbprint(jwk)


NOT_A_KEY = "jwk kty is not EC, RSA or OKP"


@pytest.mark.parametrize(
    ("jwk", "reason"),
    [
        ({"kty": "oct", "k": "c2VjcmV0"}, NOT_A_KEY),
        ({"kty": "EC", "crv": "P-256", "x": "AQAB"}, "jwk y member missing or not a string"),
        ({"kty": "RSA", "n": 5, "e": "AQAB"}, "jwk n member missing or not a string"),
        ({"kty": ["RSA"]}, NOT_A_KEY),
        ({}, NOT_A_KEY),
        ("RSA", NOT_A_KEY),
    ],
)
def test_a_thumbprint_of_no_ec_rsa_or_okp_key_is_refused(jwk: Any, reason: str) -> None:
    with pytest.raises(InvalidDPoPProof) as caught:
        jwk_thumbprint(jwk)

    assert str(caught.value) == reason


def test_a_thumbprint_hashes_utf_8_with_nothing_escaped() -> None:
    """RFC 7638 section 3: the members' UTF-8, not JSON escapes (a key never needs them)."""
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": "é"}

    assert jwk_thumbprint(jwk) == manual_thumbprint('{"crv":"Ed25519","kty":"OKP","x":"é"}')


def test_a_proof_reports_the_thumbprint_of_its_key() -> None:
    key = private_key("ES256", number=2)

    assert verify_proof(request(proof(key=key))).jkt == jwk_thumbprint(public_jwk(key))


# -- the challenge, the settings and E021 ----------------------------------------------------


def test_the_default_algorithms_are_those_of_the_contract() -> None:
    assert jwt_settings.DPOP_ALGORITHMS == DEFAULT_ALGORITHMS
    assert jwt_settings.DPOP_PROOF_LIFETIME == timedelta(seconds=60)


def test_the_challenge_names_the_algorithms() -> None:
    algs = " ".join(DEFAULT_ALGORITHMS)

    assert www_authenticate() == f'DPoP algs="{algs}"'
    assert www_authenticate("invalid_dpop_proof") == (
        f'DPoP error="invalid_dpop_proof", algs="{algs}"'
    )


def test_the_challenge_follows_the_setting_and_leaves_out_what_cannot_verify(
    settings: Any,
) -> None:
    settings.COCART_JWT = {**settings.COCART_JWT, "DPOP_ALGORITHMS": ["EdDSA", "HS256", "ES256"]}

    assert www_authenticate("use_dpop_nonce") == 'DPoP error="use_dpop_nonce", algs="EdDSA ES256"'


@pytest.mark.parametrize("error", ['a"b', "a\\b", "line\nbreak", ""])
def test_an_error_code_that_would_break_the_header_is_refused(error: str) -> None:
    with pytest.raises(ValueError, match="^an error code is printable ASCII without quote or"):
        www_authenticate(error)


@pytest.mark.parametrize("algorithms", [{"ES256"}, {"ES256": True}, "ES256"])
def test_dpop_algorithms_of_another_type_than_a_list_accept_nothing(
    settings: Any, algorithms: Any
) -> None:
    """E021 says so at startup; meanwhile no proof is accepted, rather than a guess."""
    settings.COCART_JWT = {**settings.COCART_JWT, "DPOP_ALGORITHMS": algorithms}

    assert "'ES256' is not an asymmetric algorithm" in str(refusal(proof("ES256")))
    assert www_authenticate() == 'DPoP algs=""'


def dpop_checks(settings: Any, **cocart_jwt: Any) -> list[CheckMessage]:
    settings.COCART_JWT = {**settings.COCART_JWT, **cocart_jwt}
    return [m for m in run_checks() if m.id == "cocart_jwt.E021"]


def test_the_defaults_pass_e021(settings: Any) -> None:
    assert dpop_checks(settings) == []


@pytest.mark.parametrize(
    ("algorithms", "named"),
    [
        (["HS256"], "'HS256'"),
        (["ES256", "none"], "'none'"),
        (["ES256K"], "'ES256K'"),
        ([["ES256"]], "(a list that is no algorithm name)"),
        (["-----BEGIN PRIVATE KEY----- MIIEvQ"], "(a str that is no algorithm name)"),
    ],
)
def test_e021_names_what_cannot_verify_a_proof(
    settings: Any, algorithms: list[Any], named: str
) -> None:
    (message,) = dpop_checks(settings, DPOP_ALGORITHMS=algorithms)

    assert message.msg.startswith(f"COCART_JWT DPOP_ALGORITHMS has {named}")
    assert "BEGIN" not in message.msg
    assert message.hint is not None and "ES256" in message.hint


@pytest.mark.parametrize("algorithms", [[], "ES256", None, ()])
def test_e021_wants_a_non_empty_list(settings: Any, algorithms: Any) -> None:
    (message,) = dpop_checks(settings, DPOP_ALGORITHMS=algorithms)

    assert message.msg == "COCART_JWT DPOP_ALGORITHMS must be a non-empty list of algorithm names."


@pytest.mark.parametrize("lifetime", [0, -1, timedelta(0)])
def test_e021_wants_a_positive_proof_lifetime(settings: Any, lifetime: Any) -> None:
    (message,) = dpop_checks(settings, DPOP_PROOF_LIFETIME=lifetime)

    assert "DPOP_PROOF_LIFETIME" in message.msg and "not positive" in message.msg


def test_a_proof_lifetime_that_is_no_duration_is_e005_not_e021(settings: Any) -> None:
    settings.COCART_JWT = {**settings.COCART_JWT, "DPOP_PROOF_LIFETIME": "60s"}

    ids = [m.id for m in run_checks()]

    assert "cocart_jwt.E005" in ids and "cocart_jwt.E021" not in ids


def test_a_tuple_of_algorithms_is_accepted(settings: Any) -> None:
    assert dpop_checks(settings, DPOP_ALGORITHMS=("ES256", "EdDSA")) == []
    assert verify_proof(request(proof("EdDSA")))


def test_what_the_client_sent_never_reaches_the_log(logs: pytest.LogCaptureFixture) -> None:
    """Every refusal above logs a reason; none of them quotes what the client sent."""
    jwk = public_jwk(private_key("ES256"))
    for value in (proof(htm="PUT"), proof(htu="http://elsewhere/"), proof(iat=1)):
        refusal(value)

    assert json.dumps(jwk["x"])[1:-1] not in logs.text
    assert "elsewhere" not in logs.text and "PUT" not in logs.text


def test_a_process_local_replay_cache_is_w012_with_debug_off(settings: Any) -> None:
    from django.core.checks import run_checks

    settings.DEBUG = False
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "w"}
    }
    found = [m for m in run_checks() if m.id == "cocart_jwt.W012"]
    assert len(found) == 1
    assert "replayed to another process" in found[0].msg
    assert "django-redis" in found[0].hint

    settings.DEBUG = True  # development: one process
    assert not [m for m in run_checks() if m.id == "cocart_jwt.W012"]
