"""DPoP proof validation (RFC 9449 section 4.3), the proof itself: one accepted proof per
algorithm of the default ``DPOP_ALGORITHMS``, then a refusal for each check of the header, the
JWS, ``typ``, ``alg``, the ``jwk`` and the signature, with proofs made by PyJWT. Every refusal
is an ``InvalidDPoPProof`` with one log line giving its reason and no part of the proof.
The claims (``htm``, ``htu``, ``iat``, ``ath``): tests/test_dpop_claims.py; replay, nonces and
thumbprints: tests/test_dpop_replay.py.
"""

from __future__ import annotations

import functools
import json
import warnings
from base64 import urlsafe_b64decode
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, get_default_algorithms

from cocart_jwt.dpop import InvalidDPoPProof, jwk_thumbprint, verify_proof
from tests.dpop_clients import (
    DEFAULT_ALGORITHMS,
    accepted,
    assert_refused,
    b64,
    compact,
    fresh_claims,
    jti_of,
    private_key,
    proof,
    public_jwk,
    request,
    rsa_key,
)

Refuse = Callable[..., InvalidDPoPProof]
BAD_SIGNATURE = "bad signature (not made with the key in the jwk header)"
NOT_CANONICAL = "signature is not canonical base64url (padding, + or /, unused bits)"
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@pytest.fixture
def refuse(caplog: pytest.LogCaptureFixture) -> Callable[..., InvalidDPoPProof]:
    return functools.partial(assert_refused, caplog)


# -- accepted ---------------------------------------------------------------------------


@pytest.mark.parametrize("alg", DEFAULT_ALGORITHMS)
def test_a_proof_of_each_default_algorithm_is_accepted(alg: str) -> None:
    value = proof(alg)

    result = verify_proof(request(value))

    assert result.alg == alg
    assert result.jkt == jwk_thumbprint(public_jwk(private_key(alg)))
    assert result.jti == jti_of(value)
    assert isinstance(result.iat, int)


def test_an_ed448_key_is_accepted_under_eddsa() -> None:
    key = private_key("Ed448")

    assert accepted(proof("EdDSA", key=key)).jkt == jwk_thumbprint(public_jwk(key))


def test_typ_is_compared_without_case() -> None:
    assert accepted(proof(header={"typ": "DPoP+JWT"})).alg == "ES256"


def test_a_jwk_that_names_its_own_algorithm_is_accepted() -> None:
    jwk = {**public_jwk(private_key("PS256")), "alg": "PS256", "kid": "k1", "key_ops": ["verify"]}

    assert accepted(proof("PS256", jwk=jwk)).alg == "PS256"


# -- check 1: one DPoP header -----------------------------------------------------------


def test_a_request_without_a_dpop_header_is_refused(refuse: Refuse) -> None:
    refuse(None, "no DPoP header")


def test_an_empty_dpop_header_is_refused(refuse: Refuse) -> None:
    refuse("", "empty DPoP header")


@pytest.mark.parametrize("separator", [",", ", "])
def test_two_dpop_headers_joined_by_the_server_are_refused(refuse: Refuse, separator: str) -> None:
    refuse(proof() + separator + proof(), "more than one DPoP header")


def test_one_proof_sent_twice_in_one_request_is_refused(refuse: Refuse) -> None:
    value = proof()

    refuse(f"{value},{value}", "more than one DPoP header")


def test_a_proof_up_to_8_kib_is_accepted_and_a_longer_one_refused(refuse: Refuse) -> None:
    def padded(size: int) -> str:
        return proof("EdDSA", claims={"pad": "x" * size})

    size = 0
    while len(padded(size + 1)) <= 8 * 1024:
        size += 1
    assert 8 * 1024 - 4 <= len(padded(size)) <= 8 * 1024
    assert accepted(padded(size))
    assert len(padded(size + 1)) > 8 * 1024
    refuse(padded(size + 1), "proof longer than 8 KiB")


# -- check 2: a well-formed JWS ---------------------------------------------------------


@pytest.mark.parametrize("value", ["hello", "a.b", "a.b.c.d", "a.b.c.d.e", "...", "é.é.é"])
def test_what_is_not_a_compact_jws_is_refused(value: str) -> None:
    with pytest.raises(InvalidDPoPProof):
        verify_proof(request(value))


def test_a_value_of_other_than_three_segments_says_so(refuse: Refuse) -> None:
    refuse("a.b.c.d", "not a compact JWS (three segments)")


def test_a_signature_with_unused_bits_set_is_refused(refuse: Refuse) -> None:
    value = proof()  # ES256: 64 bytes, 86 characters, the last one with 4 unused bits
    head, _, signature = value.rpartition(".")
    twisted = signature[:-1] + ALPHABET[ALPHABET.index(signature[-1]) | 1]

    refuse(f"{head}.{twisted}", NOT_CANONICAL)


def test_a_padded_signature_is_refused(refuse: Refuse) -> None:
    value = proof()  # ES256: 86 characters, two short of a multiple of four

    refuse(value + "==", NOT_CANONICAL)


def test_a_signature_in_the_standard_alphabet_is_refused(refuse: Refuse) -> None:
    value = compact({"typ": "dpop+jwt"}, {}, signature=b"\xfb\xef\xbe" * 21)
    assert value.endswith("-" * 84)

    refuse(value.replace("-", "+"), NOT_CANONICAL)


def test_a_segment_outside_the_alphabet_is_refused(refuse: Refuse) -> None:
    header, claims, signature = proof().split(".")

    refuse(f"{header}*.{claims}.{signature}", "header is not base64url (Error)")


@pytest.mark.parametrize("payload", [[1, 2], "text", 7, None])
def test_claims_that_are_not_a_json_object_are_refused(refuse: Refuse, payload: Any) -> None:
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": public_jwk(private_key("ES256"))}

    refuse(compact(header, payload), "payload is not a JSON object")


def test_a_header_that_is_not_json_is_refused(refuse: Refuse) -> None:
    refuse(f"{b64(b'{nope')}.{b64(b'{}')}.{b64(b'sig')}", "header is not JSON (JSONDecodeError)")


# -- check 4: typ -----------------------------------------------------------------------


@pytest.mark.parametrize("typ", ["JWT", "at+jwt", "application/dpop+jwt", "dpop", 1, None])
def test_a_proof_not_typed_dpop_jwt_is_refused(refuse: Refuse, typ: Any) -> None:
    refuse(proof(header={"typ": typ}), "typ is not dpop+jwt")


# -- check 5: alg -----------------------------------------------------------------------


def test_alg_none_is_refused(refuse: Refuse) -> None:
    value = jwt.encode(
        fresh_claims(),
        None,
        algorithm="none",
        headers={"typ": "dpop+jwt", "jwk": public_jwk(private_key("ES256"))},
    )

    refuse(value, "'none' is not an asymmetric algorithm of DPOP_ALGORITHMS")


def hs256_proof(secret: bytes) -> str:
    return jwt.encode(
        fresh_claims(),
        secret,
        algorithm="HS256",
        headers={"typ": "dpop+jwt", "jwk": {"kty": "oct", "k": b64(secret)}},
    )


def test_hs256_with_a_symmetric_jwk_is_refused(refuse: Refuse) -> None:
    refuse(hs256_proof(b"s" * 32), "'HS256' is not an asymmetric algorithm of DPOP_ALGORITHMS")


def test_hs256_is_refused_even_when_dpop_algorithms_names_it(refuse: Refuse, settings: Any) -> None:
    settings.COCART_JWT = {**settings.COCART_JWT, "DPOP_ALGORITHMS": ["HS256", "ES256"]}

    refuse(hs256_proof(b"s" * 32), "'HS256' is not an asymmetric algorithm of DPOP_ALGORITHMS")
    assert accepted(proof("ES256"))


def test_an_algorithm_left_out_of_dpop_algorithms_is_refused(refuse: Refuse, settings: Any) -> None:
    assert accepted(proof("PS256"))  # the default list: loaded before the change
    settings.COCART_JWT = {**settings.COCART_JWT, "DPOP_ALGORITHMS": ["ES256"]}

    refuse(proof("PS256"), "'PS256' is not an asymmetric algorithm of DPOP_ALGORITHMS")
    assert accepted(proof("ES256"))


@pytest.mark.parametrize("alg", ["XX1", ["ES256"], None, 256])
def test_an_unknown_alg_is_refused_and_not_echoed(refuse: Refuse, alg: Any) -> None:
    header = {"typ": "dpop+jwt", "alg": alg, "jwk": public_jwk(private_key("ES256"))}

    refuse(
        compact(header, fresh_claims()),
        "alg is not an asymmetric algorithm of DPOP_ALGORITHMS",
    )


# -- checks 6 and 7: a public jwk that fits alg, and the signature made with it -----------


@pytest.mark.parametrize("jwk", [None, "a key", ["EC"], 1])
def test_a_missing_or_malformed_jwk_is_refused(refuse: Refuse, jwk: Any) -> None:
    header = {"typ": "dpop+jwt", "alg": "ES256"}
    if jwk is not None:
        header["jwk"] = jwk

    refuse(compact(header, {}), "jwk header missing or not a JSON object")


@pytest.mark.parametrize("member", ["d", "p", "q", "dp", "dq", "qi", "oth", "k"])
def test_a_jwk_with_a_private_member_is_refused(refuse: Refuse, member: str) -> None:
    jwk = {**public_jwk(private_key("ES256")), member: "AQAB"}

    refuse(proof(jwk=jwk), "jwk holds private key members")


def test_a_jwk_holding_the_whole_private_key_is_refused(refuse: Refuse) -> None:
    jwk = ECAlgorithm.to_jwk(private_key("ES256"), as_dict=True)

    refuse(proof(jwk=jwk), "jwk holds private key members")


def sign_by_hand(alg: str, key: Any, header: dict[str, Any], claims: dict[str, Any]) -> str:
    """Signed with PyJWT's algorithm object directly: PyJWT's encode would refuse the pair."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = get_default_algorithms()[alg].sign(signing_input.encode(), key)
    return f"{signing_input}.{b64(signature)}"


@pytest.mark.parametrize(
    ("alg", "key_alg", "reason"),
    [
        ("ES384", "ES256", "jwk crv is not one ES384 uses"),  # a valid P-256 signature
        ("ES256", "ES512", "jwk crv is not one ES256 uses"),
        ("ES256", "PS256", "jwk kty is not EC, as ES256 needs"),
        ("RS256", "ES256", "jwk kty is not RSA, as RS256 needs"),
        ("EdDSA", "ES256", "jwk kty is not OKP, as EdDSA needs"),
        ("PS256", "EdDSA", "jwk kty is not RSA, as PS256 needs"),
    ],
)
def test_a_jwk_that_does_not_fit_alg_is_refused(
    refuse: Refuse, alg: str, key_alg: str, reason: str
) -> None:
    key = private_key(key_alg)
    header = {"typ": "dpop+jwt", "alg": alg, "jwk": public_jwk(key)}
    if key_alg.startswith("ES") and alg.startswith("ES"):
        value = sign_by_hand(alg, key, header, fresh_claims())
    else:
        value = compact(header, fresh_claims())

    refuse(value, reason)


def test_an_x25519_key_under_eddsa_is_refused(refuse: Refuse) -> None:
    jwk = {**public_jwk(private_key("EdDSA")), "crv": "X25519"}

    refuse(proof("EdDSA", jwk=jwk), "jwk crv is not one EdDSA uses")


def test_a_jwk_naming_another_algorithm_is_refused(refuse: Refuse) -> None:
    jwk = {**public_jwk(private_key("PS256")), "alg": "RS256"}

    refuse(proof("PS256", jwk=jwk), "jwk alg member names another algorithm than the alg header")


def test_a_1024_bit_rsa_key_is_refused(refuse: Refuse) -> None:
    key = rsa_key(1024)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyJWT warns about the short key as it signs
        value = proof("PS256", key=key)

    refuse(value, "RSA key not of 2048 to 8192 bits")


def rsa_jwk(n: int, e: int) -> dict[str, Any]:
    def uint(value: int) -> str:
        return b64(value.to_bytes((value.bit_length() + 7) // 8, "big"))

    return {"kty": "RSA", "n": uint(n), "e": uint(e)}


def test_an_rsa_key_over_8192_bits_is_refused(refuse: Refuse) -> None:
    n = (1 << 8199) | 1  # not a product of primes: the size is refused before any use
    header = {"typ": "dpop+jwt", "alg": "RS256", "jwk": rsa_jwk(n, 65537)}

    refuse(compact(header, fresh_claims()), "RSA key not of 2048 to 8192 bits")


@pytest.mark.parametrize("bits", [2048, 8192])
def test_rsa_keys_of_2048_to_8192_bits_are_checked(refuse: Refuse, bits: int) -> None:
    """Not products of primes: the size passes, and the signature is what fails."""
    n = (1 << (bits - 1)) | 1
    header = {"typ": "dpop+jwt", "alg": "RS256", "jwk": rsa_jwk(n, 65537)}

    refuse(compact(header, fresh_claims(), signature=bytes(bits // 8)), BAD_SIGNATURE)


def test_an_rsa_exponent_of_32_bits_is_checked(refuse: Refuse) -> None:
    n = (1 << 2047) | 1
    header = {"typ": "dpop+jwt", "alg": "RS256", "jwk": rsa_jwk(n, 4294967291)}  # a prime

    refuse(compact(header, fresh_claims(), signature=bytes(256)), BAD_SIGNATURE)


def test_an_rsa_exponent_over_32_bits_is_refused(refuse: Refuse) -> None:
    """A valid key and signature: only the exponent's length (CPU per proof) is refused."""
    numbers = private_key("RS256").private_numbers()
    p, q = numbers.p, numbers.q
    e = (1 << 61) - 1  # a prime
    d = pow(e, -1, (p - 1) * (q - 1))
    key = rsa.RSAPrivateNumbers(
        p=p,
        q=q,
        d=d,
        dmp1=d % (p - 1),
        dmq1=d % (q - 1),
        iqmp=pow(q, -1, p),
        public_numbers=rsa.RSAPublicNumbers(e, p * q),
    ).private_key()

    refuse(proof("RS256", key=key), "RSA exponent longer than 32 bits")


def test_an_rsa_modulus_with_a_leading_zero_octet_is_refused(refuse: Refuse) -> None:
    jwk = public_jwk(private_key("RS256"))
    padded = {**jwk, "n": b64(b"\x00" + urlsafe_b64decode(jwk["n"] + "=="))}

    refuse(proof("RS256", jwk=padded), "jwk n is not a minimal base64url unsigned integer")


@pytest.mark.parametrize(
    ("e", "reason"),
    [
        (b64(b"\x00\x01\x00\x01"), "jwk e is not a minimal base64url unsigned integer"),
        (b64(b"\x00\x03"), "jwk e is not a minimal base64url unsigned integer"),
        ("", "jwk e is not a minimal base64url unsigned integer"),  # no octet at all
        ("AA", "jwk is not a valid public key (ValueError)"),  # zero: one octet, not a key
    ],
)
def test_an_rsa_exponent_not_in_its_fewest_octets_is_refused(
    refuse: Refuse, e: str, reason: str
) -> None:
    refuse(proof("RS256", jwk={**public_jwk(private_key("RS256")), "e": e}), reason)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"x": 123}, "jwk x member missing or not a string"),
        ({"y": None}, "jwk y member missing or not a string"),
        ({"x": "not base64!"}, "jwk x is not base64url (Error)"),
        (
            {"x": b64(b"\x01" * 32), "y": b64(b"\x02" * 32)},
            "jwk is not a valid public key (ValueError)",
        ),
        ({"x": b64(b"\x01" * 31)}, "jwk is not a valid public key (InvalidKeyError)"),
        ({"crv": ["P-256"]}, "jwk crv is not one ES256 uses"),
        ({"kty": ["EC"]}, "jwk kty is not EC, as ES256 needs"),
    ],
)
def test_a_broken_ec_jwk_is_refused(refuse: Refuse, change: dict[str, Any], reason: str) -> None:
    jwk = {**public_jwk(private_key("ES256")), **change}
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk}

    refuse(compact(header, fresh_claims()), reason)


def test_a_crit_header_is_refused(refuse: Refuse) -> None:
    refuse(proof(header={"crit": ["exp"], "exp": 1}), "crit header present")


def test_a_bad_signature_is_refused(refuse: Refuse) -> None:
    head, _, signature = proof().rpartition(".")
    raw = bytearray(urlsafe_b64decode(signature + "=="))
    raw[10] ^= 0x01

    refuse(f"{head}.{b64(bytes(raw))}", BAD_SIGNATURE)


@pytest.mark.parametrize("alg", DEFAULT_ALGORITHMS)
def test_a_proof_signed_by_another_key_than_its_jwk_is_refused(refuse: Refuse, alg: str) -> None:
    shown = public_jwk(private_key(alg, number=1))

    refuse(proof(alg, key=private_key(alg), jwk=shown), BAD_SIGNATURE)


def test_claims_swapped_under_a_signature_are_refused(refuse: Refuse) -> None:
    header, _, signature = proof().split(".")
    other_claims = proof(htm="POST").split(".")[1]

    refuse(f"{header}.{other_claims}.{signature}", BAD_SIGNATURE)


@pytest.mark.parametrize("alg", ["RS256", "PS512", "EdDSA", "ES512"])
@pytest.mark.parametrize("length", [1, 3, 255, 513, 2000])
def test_a_signature_of_the_wrong_length_is_a_bad_signature(
    refuse: Refuse, alg: str, length: int
) -> None:
    head, _, _ = proof(alg).rpartition(".")

    refuse(f"{head}.{b64(bytes([7]) * length)}", BAD_SIGNATURE)


def test_an_empty_signature_is_refused(refuse: Refuse) -> None:
    head, _, _ = proof("EdDSA").rpartition(".")

    refuse(f"{head}.", BAD_SIGNATURE)


def test_a_proof_in_a_header_of_latin_1_bytes_is_refused(refuse: Refuse) -> None:
    refuse(proof() + "\xe9", "signature is not base64url (UnicodeEncodeError)")


def test_a_valid_ec_point_of_another_curve_is_not_used(refuse: Refuse) -> None:
    """A P-384 point given as P-256 coordinates cannot be read as a P-256 key."""
    other = ec.generate_private_key(ec.SECP384R1()).public_key().public_numbers()
    jwk = {
        "kty": "EC",
        "crv": "P-256",
        "x": b64(other.x.to_bytes(48)),
        "y": b64(other.y.to_bytes(48)),
    }

    refuse(
        compact({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk}, fresh_claims()),
        "jwk is not a valid public key (InvalidKeyError)",
    )
