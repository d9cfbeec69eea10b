"""System checks: every bad COCART_JWT fails ``manage.py check`` with its stable id."""

from __future__ import annotations

from datetime import timedelta
from functools import cache
from io import StringIO
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.core.checks import run_checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from tests.factories import hmac_secret, private_pem, public_pem

GOOD_SECRET = hmac_secret("HS256", 7)
# Without both, every configuration also gets W011 (tested in test_scope_checks.py).
IDENTITY = {"ISSUER": "https://checks.example", "AUDIENCE": "https://checks.example/api"}
BASE = {"ALGORITHM": "HS256", "SIGNING_KEY": GOOD_SECRET, **IDENTITY}
LOCMEM = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "checks"}
# Only its BACKEND is looked at by the checks; nothing connects to it.
SHARED = {
    "BACKEND": "django_redis.cache.RedisCache",
    "LOCATION": "redis://127.0.0.1:6379/15",
    "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.25, "SOCKET_TIMEOUT": 0.25},
}
GARBAGE_PEM = "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5IGF0IGFsbA==\n-----END PRIVATE KEY-----\n"
# What `jwt keygen --algorithm HS256` prints: pasted where a PEM private key belongs.
HMAC_LIKE_SECRET = "Xy4q-Rt8vWm2Kp9LzN3sBd6Fh1Jc5Gn0Qe7Tu_Ai2o"
SECRET_ENV = "COCART_JWT_TEST_MISPLACED_SECRET"


def cocart_ids() -> list[str]:
    return sorted(m.id for m in run_checks() if m.id and m.id.startswith("cocart_jwt."))


@cache
def rsa_1024_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505  (the weak key E004 refuses)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@pytest.fixture
def shared_caches(settings: Any) -> None:
    """A shared rate-limit cache, so W002 does not depend on which services are running."""
    settings.CACHES = {"default": SHARED, "locmem": LOCMEM}
    settings.DEBUG = False


def configure(settings: Any, **cocart_jwt: Any) -> None:
    settings.COCART_JWT = {**BASE, **cocart_jwt}


def test_test_settings_have_no_cocart_jwt_errors() -> None:
    errors = [
        m.id for m in run_checks() if m.id and m.id.startswith("cocart_jwt.") and m.is_serious()
    ]
    assert errors == []


def test_base_configuration_is_clean(settings: Any, shared_caches: None) -> None:
    configure(settings)
    assert cocart_ids() == []


# --- E001 ----------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["HS1024", "none", "None", "", "hs256", None])
def test_unknown_algorithm_is_e001(algorithm: Any, settings: Any, shared_caches: None) -> None:
    configure(settings, ALGORITHM=algorithm)
    assert cocart_ids() == ["cocart_jwt.E001"]


def test_unknown_fallback_algorithm_is_e001(settings: Any, shared_caches: None) -> None:
    configure(
        settings,
        FALLBACK_KEYS=[
            {"KEY_ID": "old", "ALGORITHM": "none", "SIGNING_KEY": hmac_secret("HS256", 8)}
        ],
    )
    assert cocart_ids() == ["cocart_jwt.E001"]


# --- E002 ----------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["HS256", "HS384", "HS512"])
def test_missing_hmac_secret_is_e002(algorithm: str, settings: Any, shared_caches: None) -> None:
    settings.COCART_JWT = {**IDENTITY, "ALGORITHM": algorithm}
    assert cocart_ids() == ["cocart_jwt.E002"]


def test_empty_hmac_secret_is_e002(settings: Any, shared_caches: None) -> None:
    configure(settings, SIGNING_KEY="")
    assert cocart_ids() == ["cocart_jwt.E002"]


def test_cocart_jwt_without_any_key_is_e002(settings: Any, shared_caches: None) -> None:
    settings.COCART_JWT = {**IDENTITY}
    assert cocart_ids() == ["cocart_jwt.E002"]


@pytest.mark.parametrize(
    ("algorithm", "length", "expected"),
    [
        ("HS256", 31, ["cocart_jwt.E002"]),
        ("HS256", 32, []),
        ("HS384", 47, ["cocart_jwt.E002"]),
        ("HS384", 48, []),
        ("HS512", 63, ["cocart_jwt.E002"]),
        ("HS512", 64, []),
    ],
)
def test_hmac_secret_length_boundary(
    algorithm: str, length: int, expected: list[str], settings: Any, shared_caches: None
) -> None:
    configure(settings, ALGORITHM=algorithm, SIGNING_KEY="k" * length)
    assert cocart_ids() == expected


def test_hmac_secret_length_counts_bytes_not_characters(settings: Any, shared_caches: None) -> None:
    # 16 characters, 32 bytes in UTF-8.
    configure(settings, SIGNING_KEY="é" * 16)
    assert cocart_ids() == []
    configure(settings, SIGNING_KEY="é" * 15 + "e")
    assert cocart_ids() == ["cocart_jwt.E002"]


# --- E003 ----------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["RS256", "PS384", "ES512"])
def test_asymmetric_algorithm_without_any_key_is_e003(
    algorithm: str, settings: Any, shared_caches: None
) -> None:
    settings.COCART_JWT = {**IDENTITY, "ALGORITHM": algorithm}
    assert cocart_ids() == ["cocart_jwt.E003"]


def test_garbage_private_pem_is_e003(settings: Any, shared_caches: None) -> None:
    configure(settings, ALGORITHM="RS256", SIGNING_KEY=GARBAGE_PEM)
    assert cocart_ids() == ["cocart_jwt.E003"]


def test_garbage_public_pem_is_e003(settings: Any, shared_caches: None) -> None:
    garbage = GARBAGE_PEM.replace("PRIVATE", "PUBLIC")
    settings.COCART_JWT = {**IDENTITY, "ALGORITHM": "ES256", "VERIFYING_KEY": garbage}
    assert cocart_ids() == ["cocart_jwt.E003"]


def test_encrypted_private_key_is_e003(settings: Any, shared_caches: None) -> None:
    key = serialization.load_pem_private_key(private_pem("ES256", 0).encode(), password=None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    ).decode()
    configure(settings, ALGORITHM="ES256", SIGNING_KEY=encrypted)
    assert cocart_ids() == ["cocart_jwt.E003"]


# --- E004 ----------------------------------------------------------------------------------


def test_ec_key_for_rs256_is_e004(settings: Any, shared_caches: None) -> None:
    configure(settings, ALGORITHM="RS256", SIGNING_KEY=private_pem("ES256", 0))
    assert cocart_ids() == ["cocart_jwt.E004"]


def test_rsa_key_for_es256_is_e004(settings: Any, shared_caches: None) -> None:
    configure(settings, ALGORITHM="ES256", SIGNING_KEY=private_pem("RS256", 0))
    assert cocart_ids() == ["cocart_jwt.E004"]


def test_p256_key_for_es384_is_e004(settings: Any, shared_caches: None) -> None:
    configure(settings, ALGORITHM="ES384", SIGNING_KEY=private_pem("ES256", 0))
    assert cocart_ids() == ["cocart_jwt.E004"]


def test_p256_public_key_for_es384_is_e004(settings: Any, shared_caches: None) -> None:
    settings.COCART_JWT = {
        **IDENTITY,
        "ALGORITHM": "ES384",
        "VERIFYING_KEY": public_pem(private_pem("ES256", 0)),
    }
    assert cocart_ids() == ["cocart_jwt.E004"]


@pytest.mark.parametrize("algorithm", ["RS256", "PS256"])
def test_rsa_1024_bit_key_is_e004(algorithm: str, settings: Any, shared_caches: None) -> None:
    configure(settings, ALGORITHM=algorithm, SIGNING_KEY=rsa_1024_pem())
    assert cocart_ids() == ["cocart_jwt.E004"]


@pytest.mark.parametrize("pem_of", ["RS256", "ES256"])
def test_pem_given_to_hs256_is_e004(pem_of: str, settings: Any, shared_caches: None) -> None:
    configure(settings, ALGORITHM="HS256", SIGNING_KEY=private_pem(pem_of, 0))
    assert cocart_ids() == ["cocart_jwt.E004"]


def test_public_pem_given_to_hs512_is_e004(settings: Any, shared_caches: None) -> None:
    configure(settings, ALGORITHM="HS512", SIGNING_KEY=public_pem(private_pem("RS256", 0)))
    assert cocart_ids() == ["cocart_jwt.E004"]


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
def test_verifying_key_not_matching_signing_key_is_e004(
    algorithm: str, settings: Any, shared_caches: None
) -> None:
    configure(
        settings,
        ALGORITHM=algorithm,
        SIGNING_KEY=private_pem(algorithm, 0),
        VERIFYING_KEY=public_pem(private_pem(algorithm, 1)),
    )
    assert cocart_ids() == ["cocart_jwt.E004"]


def test_matching_verifying_key_is_clean(settings: Any, shared_caches: None) -> None:
    configure(
        settings,
        ALGORITHM="RS256",
        SIGNING_KEY=private_pem("RS256", 0),
        VERIFYING_KEY=public_pem(private_pem("RS256", 0)),
    )
    assert cocart_ids() == []


# --- E005 ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "lifetime", [0, -1, timedelta(0), timedelta(seconds=-30), "15m", "900", None]
)
def test_bad_access_token_lifetime_is_e005(
    lifetime: Any, settings: Any, shared_caches: None
) -> None:
    configure(settings, ACCESS_TOKEN_LIFETIME=lifetime)
    assert cocart_ids() == ["cocart_jwt.E005"]


@pytest.mark.parametrize(
    "name",
    [
        "REFRESH_TOKEN_LIFETIME",
        "SESSION_MAX_LIFETIME",
        "ADMIN_TOKEN_LIFETIME",
        "LOGIN_LINK_LIFETIME",
        "REAUTH_MAX_AGE",
    ],
)
def test_zero_lifetimes_are_e005(name: str, settings: Any, shared_caches: None) -> None:
    configure(settings, **{name: 0})
    assert "cocart_jwt.E005" in cocart_ids()
    assert set(cocart_ids()) == {"cocart_jwt.E005"}


@pytest.mark.parametrize("name", ["LEEWAY", "TOUCH_INTERVAL", "SESSION_CACHE_TTL"])
def test_negative_intervals_are_e005(name: str, settings: Any, shared_caches: None) -> None:
    configure(settings, **{name: -1})
    assert cocart_ids() == ["cocart_jwt.E005"]


def test_access_lifetime_longer_than_refresh_lifetime_is_e005(
    settings: Any, shared_caches: None
) -> None:
    configure(
        settings,
        ACCESS_TOKEN_LIFETIME=timedelta(hours=2),
        REFRESH_TOKEN_LIFETIME=timedelta(hours=1),
    )
    assert cocart_ids() == ["cocart_jwt.E005"]


def test_refresh_lifetime_longer_than_session_max_lifetime_is_e005(
    settings: Any, shared_caches: None
) -> None:
    configure(settings, REFRESH_TOKEN_LIFETIME=timedelta(days=100))
    assert cocart_ids() == ["cocart_jwt.E005"]


def test_equal_lifetimes_are_clean(settings: Any, shared_caches: None) -> None:
    configure(
        settings, ACCESS_TOKEN_LIFETIME=3600, REFRESH_TOKEN_LIFETIME=3600, SESSION_MAX_LIFETIME=3600
    )
    assert cocart_ids() == []


@pytest.mark.parametrize("cap", [0, -1, "10", 2.5, True])
def test_bad_max_tokens_per_user_is_e005(cap: Any, settings: Any, shared_caches: None) -> None:
    configure(settings, MAX_TOKENS_PER_USER=cap)
    assert cocart_ids() == ["cocart_jwt.E005"]


@pytest.mark.parametrize("cap", [1, 10, None])
def test_good_max_tokens_per_user_is_clean(cap: Any, settings: Any, shared_caches: None) -> None:
    configure(settings, MAX_TOKENS_PER_USER=cap)
    assert cocart_ids() == []


# --- E006 ----------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", ["5", "x/min", "0/min", "5/fortnight", "", "-1/min", 5])
def test_bad_rate_string_is_e006(rate: Any, settings: Any, shared_caches: None) -> None:
    configure(settings, RATE_LIMITS={"login": rate})
    assert cocart_ids() == ["cocart_jwt.E006"]


def test_unknown_rate_limit_endpoint_is_e006(settings: Any, shared_caches: None) -> None:
    configure(settings, RATE_LIMITS={"signup": "5/min"})
    assert cocart_ids() == ["cocart_jwt.E006"]


def test_rate_limits_not_a_dict_is_e006(settings: Any, shared_caches: None) -> None:
    configure(settings, RATE_LIMITS="5/min")
    assert cocart_ids() == ["cocart_jwt.E006"]


@pytest.mark.parametrize("rate", ["5/min", "100/hour", "10/s", "1000/day", None])
def test_good_rates_are_clean(rate: Any, settings: Any, shared_caches: None) -> None:
    configure(settings, RATE_LIMITS={"login": rate, "refresh": rate, "validate": rate})
    assert cocart_ids() == []


def test_reauthenticate_is_a_known_rate_limit(settings: Any, shared_caches: None) -> None:
    configure(settings, RATE_LIMITS={"reauthenticate": "3/min"})
    assert cocart_ids() == []


# --- E007 ----------------------------------------------------------------------------------


def test_fallback_kid_duplicating_current_kid_is_e007(settings: Any, shared_caches: None) -> None:
    configure(
        settings,
        KEY_ID="k1",
        FALLBACK_KEYS=[
            {"KEY_ID": "k1", "ALGORITHM": "HS256", "SIGNING_KEY": hmac_secret("HS256", 8)}
        ],
    )
    assert cocart_ids() == ["cocart_jwt.E007"]


def test_two_fallbacks_with_the_same_kid_is_e007(settings: Any, shared_caches: None) -> None:
    configure(
        settings,
        KEY_ID="current",
        FALLBACK_KEYS=[
            {"KEY_ID": "old", "ALGORITHM": "HS256", "SIGNING_KEY": hmac_secret("HS256", 8)},
            {"KEY_ID": "old", "ALGORITHM": "HS256", "SIGNING_KEY": hmac_secret("HS256", 9)},
        ],
    )
    assert cocart_ids() == ["cocart_jwt.E007"]


def test_fallback_identical_to_current_key_is_e007(settings: Any, shared_caches: None) -> None:
    # Derived kids collide: the same secret twice.
    configure(settings, FALLBACK_KEYS=[{"ALGORITHM": "HS256", "SIGNING_KEY": GOOD_SECRET}])
    assert cocart_ids() == ["cocart_jwt.E007"]


@pytest.mark.parametrize("entry", ["old-key", ["HS256", "x"], None])
def test_fallback_not_a_dict_is_e007(entry: Any, settings: Any, shared_caches: None) -> None:
    configure(settings, FALLBACK_KEYS=[entry])
    assert cocart_ids() == ["cocart_jwt.E007"]


def test_fallback_keys_not_a_list_is_e007(settings: Any, shared_caches: None) -> None:
    configure(settings, FALLBACK_KEYS={"KEY_ID": "old", "SIGNING_KEY": hmac_secret("HS256", 8)})
    assert cocart_ids() == ["cocart_jwt.E007"]


@pytest.mark.parametrize("kid", ["", 42, "k" * 129])
def test_bad_key_id_is_e007(kid: Any, settings: Any, shared_caches: None) -> None:
    configure(settings, KEY_ID=kid)
    assert cocart_ids() == ["cocart_jwt.E007"]


def test_distinct_fallbacks_are_clean(settings: Any, shared_caches: None) -> None:
    configure(
        settings,
        KEY_ID="current",
        FALLBACK_KEYS=[
            {"KEY_ID": "old", "ALGORITHM": "HS256", "SIGNING_KEY": hmac_secret("HS256", 8)},
            {
                "KEY_ID": "older",
                "ALGORITHM": "RS256",
                "VERIFYING_KEY": public_pem(private_pem("RS256", 0)),
            },
        ],
    )
    assert cocart_ids() == []


# --- E008 .. E012 --------------------------------------------------------------------------


def test_unknown_revoke_on_event_is_e008(settings: Any, shared_caches: None) -> None:
    configure(settings, REVOKE_ON=["password_change", "login"])
    assert cocart_ids() == ["cocart_jwt.E008"]


def test_revoke_on_as_string_is_e008(settings: Any, shared_caches: None) -> None:
    configure(settings, REVOKE_ON="password_change")
    assert cocart_ids() == ["cocart_jwt.E008"]


def test_empty_revoke_on_is_clean(settings: Any, shared_caches: None) -> None:
    configure(settings, REVOKE_ON=[])
    assert cocart_ids() == []


@pytest.mark.parametrize("name", ["USER_CLAIMS", "PAYLOAD_HOOK"])
@pytest.mark.parametrize(
    "path", ["tests.test_checks.no_such_function", "no_such_package.module.func", "nodots"]
)
def test_import_path_that_does_not_import_is_e009(
    name: str, path: str, settings: Any, shared_caches: None
) -> None:
    configure(settings, **{name: path})
    assert cocart_ids() == ["cocart_jwt.E009"]


NOT_CALLABLE = {"role": "x"}


def test_import_path_of_non_callable_is_e009(settings: Any, shared_caches: None) -> None:
    configure(settings, USER_CLAIMS="tests.test_checks.NOT_CALLABLE")
    assert cocart_ids() == ["cocart_jwt.E009"]


def example_user_claims(user: Any) -> dict[str, Any]:
    return {}


def test_import_path_of_callable_is_clean(settings: Any, shared_caches: None) -> None:
    configure(settings, USER_CLAIMS="tests.test_checks.example_user_claims")
    assert cocart_ids() == []


@pytest.mark.parametrize("name", ["CACHE", "RATE_LIMIT_CACHE"])
def test_cache_alias_missing_from_caches_is_e010(
    name: str, settings: Any, shared_caches: None
) -> None:
    configure(settings, **{name: "sessions"})
    assert cocart_ids() == ["cocart_jwt.E010"]


@pytest.mark.parametrize("proxies", [["not-an-ip"], ["10.0.0.1", "10.0.0.0/33"], "10.0.0.1"])
def test_bad_trusted_proxies_is_e011(proxies: Any, settings: Any, shared_caches: None) -> None:
    configure(settings, TRUSTED_PROXIES=proxies)
    assert cocart_ids() == ["cocart_jwt.E011"]


def test_good_trusted_proxies_are_clean(settings: Any, shared_caches: None) -> None:
    configure(settings, TRUSTED_PROXIES=["10.0.0.1", "10.0.0.0/8", "::1", "fd00::/8"])
    assert cocart_ids() == []


def test_unix_in_trusted_proxies_is_clean(settings: Any, shared_caches: None) -> None:
    configure(settings, TRUSTED_PROXIES=["unix"])
    assert cocart_ids() == []
    configure(settings, TRUSTED_PROXIES=["unix", "10.0.0.0/8"])
    assert cocart_ids() == []


@pytest.mark.parametrize("proxies", [["unix", "socket"], ["unix:/run/proxy.sock"], ["UNIX "]])
def test_garbage_beside_unix_in_trusted_proxies_is_e011(
    proxies: Any, settings: Any, shared_caches: None
) -> None:
    configure(settings, TRUSTED_PROXIES=proxies)
    messages = [m for m in run_checks() if m.id == "cocart_jwt.E011"]
    assert cocart_ids() == ["cocart_jwt.E011"]
    assert '"unix"' in (messages[0].hint or "")


@pytest.mark.parametrize("prefix", [1, 48, 56, 64, 128])
def test_good_ipv6_prefix_is_clean(prefix: int, settings: Any, shared_caches: None) -> None:
    configure(settings, RATE_LIMIT_IPV6_PREFIX=prefix)
    assert cocart_ids() == []


@pytest.mark.parametrize("prefix", [0, 129, -64, "64", 64.0, True, None])
def test_bad_ipv6_prefix_is_e015(prefix: Any, settings: Any, shared_caches: None) -> None:
    configure(settings, RATE_LIMIT_IPV6_PREFIX=prefix)
    messages = [m for m in run_checks() if m.id == "cocart_jwt.E015"]
    assert cocart_ids() == ["cocart_jwt.E015"]
    assert "1 to 128" in messages[0].msg
    assert "64" in (messages[0].hint or "") and "128" in (messages[0].hint or "")


@pytest.mark.parametrize("value", ["string", ["SIGNING_KEY"], None])
def test_cocart_jwt_not_a_dict_is_e012(value: Any, settings: Any, shared_caches: None) -> None:
    settings.COCART_JWT = value
    assert cocart_ids() == ["cocart_jwt.E012"]


# --- Warnings ------------------------------------------------------------------------------


def test_signing_key_equal_to_secret_key_is_w001(settings: Any, shared_caches: None) -> None:
    configure(settings, SIGNING_KEY=settings.SECRET_KEY)
    assert cocart_ids() == ["cocart_jwt.W001"]


def test_process_local_rate_limit_cache_without_debug_is_w002(
    settings: Any, shared_caches: None
) -> None:
    configure(settings, RATE_LIMIT_CACHE="locmem")
    assert cocart_ids() == ["cocart_jwt.W002"]


def test_process_local_rate_limit_cache_with_debug_is_clean(
    settings: Any, shared_caches: None
) -> None:
    settings.DEBUG = True
    configure(settings, RATE_LIMIT_CACHE="locmem")
    assert cocart_ids() == []


def test_cached_mode_with_process_local_cache_is_w003(settings: Any, shared_caches: None) -> None:
    configure(settings, SESSION_CACHE_TTL=30, CACHE="locmem")
    assert cocart_ids() == ["cocart_jwt.W003", "cocart_jwt.W012"]  # W012: DPoP replay


def test_cached_mode_with_shared_cache_is_clean(settings: Any, shared_caches: None) -> None:
    configure(settings, SESSION_CACHE_TTL=30, CACHE="default")
    assert cocart_ids() == []


def test_strict_mode_with_process_local_cache_warns_only_of_dpop_replay(
    settings: Any, shared_caches: None
) -> None:
    configure(settings, SESSION_CACHE_TTL=0, CACHE="locmem")
    assert cocart_ids() == ["cocart_jwt.W012"]  # no W003: strict mode reads the database


def test_unknown_setting_name_is_w004(settings: Any, shared_caches: None) -> None:
    configure(settings, SIGNING_KYE="typo")
    messages = [m for m in run_checks() if m.id == "cocart_jwt.W004"]
    assert cocart_ids() == ["cocart_jwt.W004"]
    assert "SIGNING_KYE" in messages[0].msg


def test_only_verifying_key_for_rs256_is_w005(settings: Any, shared_caches: None) -> None:
    settings.COCART_JWT = {
        **IDENTITY,
        "ALGORITHM": "RS256",
        "VERIFYING_KEY": public_pem(private_pem("RS256", 0)),
    }
    assert cocart_ids() == ["cocart_jwt.W005"]


def test_several_problems_are_all_reported(settings: Any, shared_caches: None) -> None:
    configure(
        settings,
        ALGORITHM="HS1024",
        ACCESS_TOKEN_LIFETIME=0,
        RATE_LIMITS={"login": "5"},
        REVOKE_ON=["login"],
        TRUSTED_PROXIES=["x"],
        CACHE="nope",
        SIGNING_KYE="typo",
    )
    assert cocart_ids() == [
        "cocart_jwt.E001",
        "cocart_jwt.E005",
        "cocart_jwt.E006",
        "cocart_jwt.E008",
        "cocart_jwt.E010",
        "cocart_jwt.E011",
        "cocart_jwt.W004",
    ]


# --- manage.py check ------------------------------------------------------------------------


@pytest.mark.parametrize("deploy", [False, True], ids=["check", "check-deploy"])
def test_manage_py_check_fails_with_the_error_id(
    deploy: bool, settings: Any, shared_caches: None
) -> None:
    configure(settings, ALGORITHM="HS1024")
    with pytest.raises(SystemCheckError, match=r"cocart_jwt\.E001"):
        call_command("check", deploy=deploy)


def test_manage_py_check_passes_with_a_good_configuration(
    settings: Any, shared_caches: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure(settings)
    call_command("check")
    assert "cocart_jwt" not in capsys.readouterr().err


# --- No key value in any message -----------------------------------------------------------


def check_output() -> str:
    """Everything ``manage.py check`` shows: the SystemCheckError and both streams."""
    out, err = StringIO(), StringIO()
    with pytest.raises(SystemCheckError) as raised:
        call_command("check", stdout=out, stderr=err)
    return f"{raised.value}\n{out.getvalue()}\n{err.getvalue()}"


def quotes_any_part(secret: str, text: str, width: int = 12) -> bool:
    return any(secret[i : i + width] in text for i in range(len(secret) - width + 1))


def misplaced(algorithm: str, where: str, secret: str) -> dict[str, Any]:
    """COCART_JWT for ``algorithm`` with an HMAC-like ``secret`` in the wrong place."""
    pem = private_pem(algorithm, 0)
    return {
        "signing": {"SIGNING_KEY": secret},
        "verifying": {"VERIFYING_KEY": secret},
        "env": {"SIGNING_KEY": f"env:{SECRET_ENV}"},
        "fallback-signing": {"SIGNING_KEY": pem, "FALLBACK_KEYS": [{"SIGNING_KEY": secret}]},
        "fallback-verifying": {"SIGNING_KEY": pem, "FALLBACK_KEYS": [{"VERIFYING_KEY": secret}]},
    }[where] | {"ALGORITHM": algorithm, **IDENTITY}


WHERE = ["signing", "verifying", "env", "fallback-signing", "fallback-verifying"]


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize("algorithm", ["RS256", "ES256", "PS256"])
def test_check_never_prints_a_misplaced_secret_and_says_how_to_make_a_key(
    algorithm: str,
    where: str,
    settings: Any,
    shared_caches: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(SECRET_ENV, HMAC_LIKE_SECRET)
    settings.COCART_JWT = misplaced(algorithm, where, HMAC_LIKE_SECRET)

    output = check_output()

    assert "cocart_jwt.E003" in output
    assert not quotes_any_part(HMAC_LIKE_SECRET, output)
    assert f"python manage.py jwt keygen --algorithm {algorithm}" in output


def test_check_names_the_variable_a_misplaced_secret_came_from(
    settings: Any, shared_caches: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, HMAC_LIKE_SECRET)
    settings.COCART_JWT = misplaced("RS256", "env", HMAC_LIKE_SECRET)
    assert SECRET_ENV in check_output()


@pytest.mark.parametrize(
    "secret",
    [HMAC_LIKE_SECRET * 8, f"{HMAC_LIKE_SECRET}\x00{HMAC_LIKE_SECRET}"],
    ids=["longer-than-a-file-name", "nul-byte"],
)
def test_check_never_prints_a_secret_that_cannot_even_be_a_file_name(
    secret: str, settings: Any, shared_caches: None
) -> None:
    settings.COCART_JWT = misplaced("RS256", "signing", secret)

    output = check_output()

    assert "cocart_jwt.E003" in output
    assert not quotes_any_part(HMAC_LIKE_SECRET, output)
    assert "python manage.py jwt keygen --algorithm RS256" in output


def test_check_names_an_explicit_key_file_path(
    settings: Any, shared_caches: None, tmp_path: Any
) -> None:
    missing = tmp_path / "jwt-2026.pem"
    settings.COCART_JWT = {**IDENTITY, "ALGORITHM": "ES256", "SIGNING_KEY": f"file:{missing}"}
    assert str(missing) in check_output()


def test_a_secret_pasted_into_algorithm_is_not_printed(settings: Any, shared_caches: None) -> None:
    configure(settings, ALGORITHM=HMAC_LIKE_SECRET)

    output = check_output()

    assert "cocart_jwt.E001" in output
    assert not quotes_any_part(HMAC_LIKE_SECRET, output)
