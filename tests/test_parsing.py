"""The one grammar of lifetimes and the one check of additional claims (cocart_jwt/parsing.py).

The admin's create form and ``manage.py jwt`` used to read lifetimes each their own way (the
form took ``15 m`` and ``24H`` but no ``1.5h``; the command the reverse): the tables below pin
the grammar both now share, and the last tests drive the form and the command side by side.
"""

from __future__ import annotations

import io
import json
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from cocart_jwt.admin.forms import TokenCreateForm
from cocart_jwt.models import Token
from cocart_jwt.parsing import (
    DURATION_EXAMPLES,
    MAX_CLAIMS_INPUT,
    MAX_CLAIMS_LENGTH,
    InvalidClaims,
    format_duration,
    parse_claims,
    parse_duration,
    reserved_claim_problems,
)

ACCEPTED = [
    # seconds, integer or decimal
    ("3600", timedelta(hours=1)),
    ("0", timedelta(0)),
    ("0.5", timedelta(milliseconds=500)),
    ("  90  ", timedelta(seconds=90)),
    # a number with a unit, any case, a space allowed before the unit
    ("90s", timedelta(seconds=90)),
    ("15m", timedelta(minutes=15)),
    ("15 m", timedelta(minutes=15)),
    ("1.5h", timedelta(minutes=90)),
    ("24H", timedelta(hours=24)),
    ("7d", timedelta(days=7)),
    ("7 D", timedelta(days=7)),
    ("2w", timedelta(weeks=2)),
    ("0.1s", timedelta(milliseconds=100)),
    ("1.1h", timedelta(seconds=3960)),  # exact: decimal arithmetic, no float residue
    ("0.0000001s", timedelta(0)),  # below a microsecond
    ("999999999d", timedelta(days=999999999)),  # timedelta's largest number of days
    # Django's forms (what a DurationField takes)
    ("01:30:00", timedelta(hours=1, minutes=30)),
    ("1 02:00:00", timedelta(days=1, hours=2)),
    ("1 day, 2:00:00.500000", timedelta(days=1, hours=2, milliseconds=500)),
    ("3 days", timedelta(days=3)),
    ("-5", timedelta(seconds=-5)),  # valid syntax: the caller refuses it
    # ISO 8601
    ("P1D", timedelta(days=1)),
    ("PT15M", timedelta(minutes=15)),
    ("P1DT2H", timedelta(days=1, hours=2)),
    ("-P1D", timedelta(days=-1)),  # valid syntax: the caller refuses it
]

REFUSED = [
    "",
    "  ",
    "5x",
    "1y",
    "-5m",
    "15 minutes",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "1e9999",
    "1e3",
    "1_000",
    "0x10",
    "١٢",  # Arabic-Indic digits
    "１２",  # full-width digits
    "99999999999d",  # past timedelta's range
    "1000000000d",
    "9" * 64,  # at the length limit, but far past timedelta's range
    "P99999999999D",
    "99999999999 00:00:00",
    "1" * 65,  # over the length limit
    " " * 10 + "1" * 65,
    "15m\x00",
    "15m; DROP TABLE",
]


@pytest.mark.parametrize(("text", "expected"), ACCEPTED)
def test_parse_duration_accepts(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", REFUSED)
def test_parse_duration_refuses_with_a_value_error_naming_the_accepted_forms(text: str) -> None:
    with pytest.raises(ValueError) as refused:
        parse_duration(text)
    assert type(refused.value) is ValueError  # never an OverflowError or another kind
    assert str(refused.value).endswith(f"use {DURATION_EXAMPLES}.")


def test_parse_duration_says_when_the_input_is_too_long() -> None:
    with pytest.raises(ValueError, match="at most 64 characters"):
        parse_duration("1" * 65)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (3600, timedelta(hours=1)),
        (1.5, timedelta(seconds=1.5)),
        (timedelta(days=2), timedelta(days=2)),
    ],
)
def test_parse_duration_takes_numbers_and_timedeltas_from_code(
    value: Any, expected: timedelta
) -> None:
    assert parse_duration(value) == expected


@pytest.mark.parametrize("value", [None, True, float("nan"), float("inf"), 1e300, [], b"15m"])
def test_parse_duration_refuses_other_values_from_code(value: Any) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(value)


def test_every_example_in_the_help_text_is_accepted() -> None:
    text = DURATION_EXAMPLES.replace("(seconds)", "").replace("ISO 8601 such as", "")
    examples = [word.strip() for word in text.replace(" or ", ",").split(",") if word.strip()]
    assert len(examples) == 10
    for example in examples:
        assert parse_duration(example) > timedelta(0), example


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(hours=24), "24h"),
        (timedelta(days=1), "24h"),
        (timedelta(days=2), "2d"),
        (timedelta(days=7), "7d"),
        (timedelta(days=90), "90d"),
        (timedelta(minutes=90), "90m"),
        (timedelta(seconds=90), "90s"),
        (timedelta(days=1, seconds=1), "86401s"),
        (timedelta(seconds=1.5), "0:00:01.500000"),
        (timedelta(0), "0:00:00"),
        (timedelta(days=-1), "-1 day, 0:00:00"),
    ],
)
def test_format_duration_writes_what_parse_duration_reads_back(value: timedelta, text: str) -> None:
    assert format_duration(value) == text
    assert parse_duration(text) == value


# -- additional claims ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('{"tenant": "acme"}', {"tenant": "acme"}),
        ('  {"roles": ["picker"], "n": 2}  ', {"roles": ["picker"], "n": 2}),
        ({"tenant": "acme"}, {"tenant": "acme"}),
        ("", {}),
        ("   ", {}),
        (None, {}),
        ("{}", {}),
    ],
)
def test_parse_claims_accepts_a_json_object_of_data(raw: Any, expected: dict[str, Any]) -> None:
    assert parse_claims(raw) == expected


@pytest.mark.parametrize(
    ("raw", "code", "message"),
    [
        ("{not json", "invalid", "This is not valid JSON: "),
        ('{"a": NaN}', "invalid", "This is not valid JSON: NaN is not JSON"),
        ('{"a": Infinity}', "invalid", "This is not valid JSON: Infinity is not JSON"),
        ({"a": float("nan")}, "invalid", "This is not valid JSON"),
        ({"a": object()}, "invalid", "This is not valid JSON"),
        ('["a"]', "not_object", 'Enter a JSON object, such as {"tenant": "acme"}, not a list.'),
        ('"a"', "not_object", "not a string."),
        ("42", "not_object", "not a single value."),
        ('{"a": "x\\u0000y"}', "nul", "The claims cannot contain the NUL character"),
        ('{"x\\u0000": 1}', "nul", "The claims cannot contain the NUL character"),
        ({"a": ["\x00"]}, "nul", "The claims cannot contain the NUL character"),
        ('{"sub": "1"}', "reserved", '"sub" is set by cocart_jwt on every token'),
        ('{"scope": "admin"}', "reserved", '"scope" cannot be given here'),
        ("[" * 100_000, "too_long", "The claims are too long: at most 4096 characters"),
        ("[" * 5_000, "too_long", "The claims are too long"),  # nesting, within the input
        (json.dumps({"a": "x" * MAX_CLAIMS_LENGTH}), "too_long", "The claims are too long"),
        (json.dumps({"a": "é" * 1000}), "too_long", "The claims are too long"),  # \u00e9 each
    ],
)
def test_parse_claims_refuses_with_the_reason(raw: Any, code: str, message: str) -> None:
    with pytest.raises(InvalidClaims) as refused:
        parse_claims(raw)
    assert isinstance(refused.value, ValueError)
    assert refused.value.code == code
    assert message in str(refused.value)


def test_claims_input_is_bounded_before_parsing_and_the_token_part_after() -> None:
    """Pretty-printed input may be longer than the claims it holds; the bound on what goes
    into the token is on compact JSON."""
    pretty = json.dumps({f"k{n}": "v" * 30 for n in range(80)}, indent=20)
    assert MAX_CLAIMS_LENGTH < len(pretty) <= MAX_CLAIMS_INPUT
    assert len(parse_claims(pretty)) == 80
    with pytest.raises(InvalidClaims, match="too long"):
        parse_claims("{" + " " * MAX_CLAIMS_INPUT + "}")


def test_reserved_claim_problems_give_one_sentence_per_kind() -> None:
    problems = reserved_claim_problems({"sid": 1, "exp": 1, "cnf": {}, "auth_time": 1, "ok": 1})

    assert problems == [
        '"exp", "sid" are set by cocart_jwt on every token and cannot be given here.',
        '"auth_time", "cnf" cannot be given here: resource servers read them as what the token '
        "may do, which client holds it, how the user signed in or what kind of token it is. "
        "Additional claims are data and grant nothing.",
    ]
    assert reserved_claim_problems({"tenant": "acme", "roles": []}) == []


def test_refused_claims_keep_each_sentence_apart() -> None:
    with pytest.raises(InvalidClaims) as refused:
        parse_claims({"sub": "1", "scope": "x"})
    assert refused.value.messages == reserved_claim_problems({"sub": "1", "scope": "x"})
    assert str(refused.value) == " ".join(refused.value.messages)


# -- the admin form and the command accept the same values ---------------------------------

# Within (0, SESSION_MAX_LIFETIME]; past it the form refuses and the command caps with a
# warning, on purpose. Among them, what only one of the two used to accept.
SAME_VALUES = [
    "3600",
    "90s",
    "15m",
    "15 m",  # the form only, before
    "15M",  # the form only, before
    "1.5h",  # the command only, before
    "2.5d",  # the command only, before
    "24h",
    "7d",
    "2w",
    "90d",
    "01:30:00",
    "1 02:00:00",
    "P1D",
    "PT15M",
    "0",
    "-5",
    "-P1D",
    "0.0000001s",
    "",
    "soon",
    "5x",
    "-5m",
    "nan",
    "1e9999",
    "99999999999d",
    "1" * 65,
]


@pytest.fixture
def superuser(django_user_model: Any) -> Any:
    return django_user_model.objects.create_superuser("root", "root@example.com", "x")


def form_lifetime(actor: Any, user: Any, value: str) -> timedelta | None:
    """The lifetime the admin's create form cleans from ``value``, or None when refused."""
    data = {"user": user.pk, "lifetime": value, "claims": "", "description": ""}
    form = TokenCreateForm(data=data, actor=actor)
    form.is_valid()
    if "lifetime" in form.errors:
        return None
    lifetime: timedelta = form.cleaned_data["lifetime"]
    return lifetime


def command_lifetime(user: Any, value: str) -> timedelta | None:
    """The lifetime of the session ``jwt create --ttl value`` makes, or None when refused."""
    out = io.StringIO()
    try:
        call_command("jwt", "create", user.get_username(), f"--ttl={value}", stdout=out)
    except CommandError:
        return None
    session = Token.objects.get(user=user)
    session.delete()
    return session.expires_at - session.created_at


@pytest.mark.parametrize("value", SAME_VALUES)
def test_admin_form_and_command_accept_the_same_lifetimes(
    superuser: Any, user: Any, value: str
) -> None:
    assert form_lifetime(superuser, user, value) == command_lifetime(user, value)


def test_admin_form_and_command_accept_what_either_accepted_before(
    superuser: Any, user: Any
) -> None:
    for value in ("15 m", "15M", "1.5h", "2.5d"):
        assert form_lifetime(superuser, user, value) is not None, value
        assert command_lifetime(user, value) is not None, value
