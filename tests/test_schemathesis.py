"""The OpenAPI schemas tell the truth: Schemathesis runs every check it has (status codes,
content types, response bodies and headers, valid data accepted, invalid data refused, auth
enforced, unsupported methods, use after delete...) against what the endpoints answer, one
test per operation (examples, coverage and fuzzing phases), then call sequences (stateful).

Two APIs:
- the app, with the test settings, served in this process (WSGI): drf-spectacular's schema
  with the login link added by ``cocart_jwt.schema.postprocess_schema``;
- the example store, under its own settings in gunicorn (``tests.test_store.StoreServer``):
  the schema ``manage.py spectacular`` writes, which is the one ``/api/schema/`` serves (a
  test says so): the store, ``/api/me/`` and the app as the store mounts it.

Each request carries a fresh access token of a user made here: a generated call may log out
or revoke its own session in the middle of a run. Deterministic: a fixed seed, derandomized
generation, no example database, a few examples per operation, only loopback traffic. Rate
limits are off in the app's run; the store keeps its login link limit (5/min), whose 429 is
documented, with its Retry-After.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any

import httpx
import hypothesis
import pytest

schemathesis = pytest.importorskip("schemathesis")
pytest.importorskip("drf_spectacular")

from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.auth.models import Permission  # noqa: E402
from django.core.handlers.wsgi import WSGIHandler  # noqa: E402
from django.core.signals import request_finished, request_started  # noqa: E402
from django.db import close_old_connections  # noqa: E402
from drf_spectacular.generators import SchemaGenerator  # noqa: E402
from drf_spectacular.settings import patched_settings  # noqa: E402
from schemathesis.core.failures import FailureGroup  # noqa: E402

from cocart_jwt.models import Token  # noqa: E402
from tests.test_store import StoreServer, run_in_example  # noqa: E402

SEED = 20_260_514
MAX_EXAMPLES = 12
STATEFUL_SCENARIOS = 15
STATEFUL_STEPS = 6
USERNAME = "schemathesis"
PASSWORD = "schemathesis-password-123"
HOOKS = ["drf_spectacular.hooks.postprocess_schema_enums", "cocart_jwt.schema.postprocess_schema"]

# Schema-valid, yet refused for what only the database knows, with an answer the schema
# documents: a random login link token is no live link (400); a random product slug is no
# product, or more than the stock (400); a checkout of an empty cart (400); one personal
# token more than MAX_PATS_PER_USER (400).
# The login link page is a Django view behind CSRF protection: Django's CsrfViewMiddleware
# refuses any other unsafe method (PUT, QUERY...) with 403 before the view can say 405.
LOGIN_LINK_PAGE = {
    "include-path": "/api/auth/login-link/",
    "checks": {
        "positive_data_acceptance": {"expected-statuses": ["2XX", "3XX", "400", "403", "429"]},
        "unsupported_method": {"enabled": False},
    },
}
# RFC 7009 section 2.2 answers a revocation request 200 whatever its token, RFC 7662 section 2.2
# an introspection {"active": false}: neither refuses a body the schema calls invalid (a token
# missing, or not a string). Every other check still runs on them.
ANY_BODY_ANSWERED = {
    "include-path-regex": "^/api/auth/(revoke|introspect)/$",
    "checks": {"negative_data_rejection": {"enabled": False}},
}
# The run's one user may already hold MAX_PATS_PER_USER personal tokens: making one more is a
# 400 that no schema can foresee.
PERSONAL_TOKENS = {
    "include-name": "POST /api/auth/tokens/",
    "checks": {
        "positive_data_acceptance": {"expected-statuses": ["2XX", "400", "401", "403", "429"]}
    },
}
STORE_RULES = {
    "include-path-regex": "^/api/(cart/items/|orders/$)",
    "checks": {
        "positive_data_acceptance": {
            "expected-statuses": ["2XX", "400", "401", "404", "409", "429"]
        }
    },
}


def config(*exceptions: dict[str, Any]) -> Any:
    """Every check and every phase (Schemathesis' defaults), bounded and deterministic."""
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "cache": {"enabled": False},  # nothing written into the working tree
            "generation": {
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "database": "none",
                # DRF refuses a NUL byte in every text field (400): a rule of the framework
                # that no generated schema states field by field.
                "allow-x00": False,
            },
            # Half the generated logins use the user made here: the stateful phase follows
            # a real token pair's links to refresh and to revoking its session.
            "dictionaries": {
                "usernames": {"values": [USERNAME]},
                "passwords": {"values": [PASSWORD]},
            },
            "parameters": {
                "body.username": {"dictionary": "usernames", "probability": 0.5},
                "body.password": {"dictionary": "passwords", "probability": 0.5},
            },
            "operations": list(exceptions),
        }
    )


# The fixtures hold for the whole run of an operation on purpose (a database transaction,
# a server); the cases are generated within Schemathesis' bounds (config() above).
PER_OPERATION = hypothesis.settings(
    deadline=None, suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture]
)


def stateful_settings() -> hypothesis.settings:
    return hypothesis.settings(
        max_examples=STATEFUL_SCENARIOS,
        stateful_step_count=STATEFUL_STEPS,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(hypothesis.HealthCheck),
    )


# Schemathesis sets auth on a case when it makes it, some at collection, before any database
# or server is there: the case carries this, replaced by a new access token right before the
# request goes out. Cases that test a missing or a wrong token carry something else.
TOKEN_PLACEHOLDER = "a-fresh-access-token"
PLACEHOLDER_HEADER = f"Bearer {TOKEN_PLACEHOLDER}"


def authenticate_with_fresh_tokens(schema: Any) -> None:
    @schema.auth()
    class FreshToken:
        def get(self, case: Any, ctx: Any) -> str:
            return TOKEN_PLACEHOLDER

        def set(self, case: Any, data: str, ctx: Any) -> None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


def with_fresh_token(case: Any, issue: Callable[[], str]) -> Any:
    if case.headers and case.headers.get("Authorization") == PLACEHOLDER_HEADER:
        case.headers["Authorization"] = f"Bearer {issue()}"
    return case


def sequences(schema: Any, issue: Callable[[], str], base_url: str | None = None) -> Any:
    """The schema's state machine (links followed from response to request), with tokens."""

    class Sequences(schema.as_state_machine()):  # type: ignore[misc]
        def before_call(self, case: Any) -> None:
            with_fresh_token(case, issue)

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"base_url": base_url} if base_url else {}

    return Sequences


# -- the app, in this process ------------------------------------------------------------------


def app_openapi() -> dict[str, Any]:
    """The app's endpoints, as a site that lists the login link hook documents them."""
    with patched_settings({"POSTPROCESSING_HOOKS": HOOKS}):
        schema = SchemaGenerator(urlconf="tests.urls").get_schema(request=None, public=True)
    # tests.urls also routes views of the test suite: leave them out.
    schema["paths"] = {
        path: item for path, item in schema["paths"].items() if path.startswith("/api/auth/")
    }
    return schema


app_schema = schemathesis.openapi.from_dict(
    app_openapi(), config=config(LOGIN_LINK_PAGE, ANY_BODY_ANSWERED, PERSONAL_TOKENS)
)
app_schema.app = WSGIHandler()
authenticate_with_fresh_tokens(app_schema)


@pytest.fixture
def issue_app_token(db: None) -> Callable[[], str]:
    """The user of this run (who may introspect tokens); a new access token of theirs each
    call."""
    user = get_user_model().objects.create_user(USERNAME, password=PASSWORD)
    user.user_permissions.add(Permission.objects.get(codename="introspect_token"))
    return lambda: Token.objects.issue(user).access_token


@pytest.fixture
def in_process_requests(db: None) -> Iterator[None]:
    """Requests served in this process share the test's database transaction: Django's
    end-of-request connection cleanup must not close it (Django's test client does the same)."""
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    try:
        yield
    finally:
        for signal in (request_started, request_finished):
            signal.connect(close_old_connections)


@app_schema.parametrize()
@PER_OPERATION
def test_the_app_answers_as_its_schema_says(
    case: Any, issue_app_token: Callable[[], str], in_process_requests: None
) -> None:
    with_fresh_token(case, issue_app_token).call_and_validate()


def test_the_app_answers_as_its_schema_says_through_call_sequences(
    issue_app_token: Callable[[], str], in_process_requests: None
) -> None:
    sequences(app_schema, issue_app_token).run(settings=stateful_settings())


def test_the_run_fails_when_an_answer_of_the_app_is_not_documented(
    in_process_requests: None,
) -> None:
    """The harness catches a regression: validate's 401 taken out of the schema."""
    openapi = app_openapi()
    del openapi["paths"]["/api/auth/validate/"]["post"]["responses"]["401"]
    schema = schemathesis.openapi.from_dict(openapi, config=config())
    schema.app = WSGIHandler()
    case = schema["/api/auth/validate/"]["POST"].Case()  # no token: a 401

    with pytest.raises(FailureGroup) as failed:
        case.call_and_validate()

    assert "Undocumented status code" in str(failed.value)
    assert "Received: 401" in str(failed.value)


# -- the example store, in gunicorn ------------------------------------------------------------


@cache
def store_openapi() -> dict[str, Any]:
    """The store's schema, written by ``manage.py spectacular`` under the store's settings
    (the test settings do not install the store)."""
    schema: dict[str, Any] = json.loads(
        run_in_example(
            "manage.py",
            "spectacular",
            "--format",
            "openapi-json",
            what="writing the store's schema",
        )
    )
    return schema


def log_in_to_the_store(base_url: str) -> str:
    response = httpx.post(
        f"{base_url}/api/auth/login/",
        json={"username": USERNAME, "password": PASSWORD},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


store_schema = schemathesis.openapi.from_dict(
    store_openapi(), config=config(LOGIN_LINK_PAGE, STORE_RULES, ANY_BODY_ANSWERED, PERSONAL_TOKENS)
)
authenticate_with_fresh_tokens(store_schema)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoreServer]:
    with StoreServer(tmp_path_factory.mktemp("store-schemathesis")) as server:
        server.manage(
            "shell",
            "-c",
            "from django.contrib.auth import get_user_model; "
            f"get_user_model().objects.create_user({USERNAME!r}, password={PASSWORD!r})",
        )
        yield server


def test_the_store_serves_the_schema_this_run_checks(store: StoreServer) -> None:
    served = store.http.get("/api/schema/", params={"format": "json"})

    assert served.status_code == 200
    assert served.json() == store_openapi()
    assert "/api/auth/login-link/" in served.json()["paths"]


def test_the_store_documents_the_step_up_challenge_of_its_checkout() -> None:
    """RecentLogin's 401 (RFC 9470), which a fuzzer with fresh logins never meets."""
    unauthorized = store_openapi()["paths"]["/api/orders/"]["post"]["responses"]["401"]
    challenge = unauthorized["headers"]["WWW-Authenticate"]

    assert "reauthentication_required" in unauthorized["description"]
    assert 'error="insufficient_user_authentication", max_age=' in challenge["description"]
    assert challenge["required"] is True


@store_schema.parametrize()
@PER_OPERATION
def test_the_store_answers_as_its_schema_says(case: Any, store: StoreServer) -> None:
    with_fresh_token(case, lambda: log_in_to_the_store(store.base))
    case.call_and_validate(base_url=store.base)


def test_the_store_answers_as_its_schema_says_through_call_sequences(store: StoreServer) -> None:
    machine = sequences(store_schema, lambda: log_in_to_the_store(store.base), store.base)
    machine.run(settings=stateful_settings())


@pytest.mark.parametrize(
    "path",
    ["/api/products/a%00b/", "/api/cart/items/-1/", "/api/orders/x/", "/api/no/such/thing/"],
)
@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
def test_a_store_url_no_pattern_takes_is_the_json_404_of_the_api(
    store: StoreServer, method: str, path: str
) -> None:
    response = store.call(method, path)

    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Not found.", "code": "not_found"}


def test_a_store_url_without_its_slash_still_redirects_to_it(store: StoreServer) -> None:
    response = store.http.get("/api/products", follow_redirects=False)

    assert response.status_code == 301
    assert response.headers["Location"] == "/api/products/"
