"""pytest plugin of tools/mutation.py: a mutant runs only the tests of its module's concept.

mutmut's stats run records, for each function, every test during which it ran; a mutant of
that function then runs those tests. Here nearly every test signs a token, so the key and
token functions run in about 950 of the 1,300 tests, and a surviving mutant there would run
all of them. This plugin narrows that record, as it is made, to the tests that own the
module's behaviour (``CONCEPT_TESTS``): a mutant of ``keys.py`` is judged by the key tests,
not by the admin's. A function that none of those tests reaches keeps every test that ran it
(a cache filled once per run, say, runs in whichever test comes first).

In a mutant's run it also orders the tests fastest first (as mutmut does when it forks from
its own process), so a mutant that a quick test kills is done quickly, and the order is the
same in every run.

mutmut loads this plugin (``-p tools.mutation_selection`` in ``[tool.mutmut]``) in every
pytest run it makes. A new test file counts for a module once it is named below, and in
``pytest_add_cli_args_test_selection`` (tools/mutation.py checks that the two agree).
"""

from __future__ import annotations

import gc
import json
import os
from collections import defaultdict
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import pytest

# What judges the registry's domain methods: issue and revoke (managers), renew and rotate
# (refresh).
REGISTRY_TESTS: tuple[str, ...] = (
    "test_registry.py",
    "test_token_kinds.py",
    "test_lifecycle.py",
    "test_concurrency.py",
    "test_admin.py",
    "test_impersonation.py",
    "test_cookies.py",
    "test_login_link.py",
    # Revocations under a router: where TokenQuerySet.revoke reads the browser session keys.
    "test_login_link_sessions.py::test_links_sign_in_and_revoke_under_an_app_label_router",
    "test_login_link_sessions.py::test_the_revocation_reads_the_browser_session_keys_where*",
    "test_binding.py",
    "test_claims_hardening.py",
    "test_secrets_at_rest.py",
    "test_atomic_requests.py",
    "test_command.py::test_create*",
    "test_command.py::test_destroy*",
    "test_command.py::test_cleanup*",
    "test_hostile_bodies.py::test_refresh*",
    "test_hostile_bodies.py::test_fuzz_refresh*",
    "test_replica_reads.py",
    "test_reuse_grace.py",
    "test_idle_timeout.py",
    "test_events.py",
    "test_step_up.py",
    # Personal tokens: their limit under the user's lock, never an eviction.
    "test_personal_tokens.py::test_beyond*",
    "test_personal_tokens.py::test_personal_tokens_and_logins*",
)

# Module of cocart_jwt -> the tests that may kill its mutants: a test file, or
# ``file::name`` with * for the tests of that file whose name matches.
CONCEPT_TESTS: dict[str, tuple[str, ...]] = {
    "keys": (
        "test_keys.py",
        "test_algorithms.py",
        "test_hostile_tokens.py",
        "test_checks.py",
        "test_secrets_at_rest.py",
        "test_settings.py",
        "test_newcomer_checks.py",
        "test_command.py::test_keygen*",
    ),
    "key_material": (
        "test_keys.py",
        "test_algorithms.py",
        "test_hostile_tokens.py",
        "test_checks.py",
        "test_secrets_at_rest.py",
        "test_settings.py",
        "test_newcomer_checks.py",
        "test_command.py::test_keygen*",
    ),
    "tokens": (
        "test_hostile_tokens.py",
        "test_canonical_tokens.py",
        "test_claims_hardening.py",
        "test_algorithms.py",
        "test_lifecycle.py",
        "test_keys.py",
        "test_settings.py",
        "test_secrets_at_rest.py",
        "test_step_up.py",
        "test_token_kinds.py",
    ),
    "authentication": (
        "test_authentication.py",
        "test_dpop_binding.py",
        "test_session_store.py",
        "test_lifecycle.py",
        "test_hostile_tokens.py",
        "test_cached_mode.py",
        "test_binding.py",
        "test_canonical_tokens.py",
        "test_registry.py",
        "test_cookies.py",
        "test_login_csrf.py",
        "test_newcomer_checks.py",
        "test_idle_timeout.py",
    ),
    "store.live": (
        "test_authentication.py",
        "test_session_store.py",
        "test_lifecycle.py",
        "test_hostile_tokens.py",
        "test_cached_mode.py",
        "test_binding.py",
        "test_canonical_tokens.py",
        "test_registry.py",
        "test_cookies.py",
        "test_login_csrf.py",
        "test_newcomer_checks.py",
        "test_login_link_sessions.py",
        "test_replica_reads.py",
        "test_snapshot_instances.py",
        "test_idle_timeout.py",
    ),
    "store.cached": (
        "test_session_store.py",
        "test_authentication.py",
        "test_cached_mode.py",
        "test_binding.py",
        "test_registry.py",
        "test_lifecycle.py",
        "test_login_link_sessions.py",
        "test_canonical_tokens.py",
    ),
    "store.strict": (
        "test_session_store.py",
        "test_authentication.py",
        "test_cached_mode.py",
        "test_binding.py",
        "test_registry.py",
        "test_lifecycle.py",
        "test_canonical_tokens.py",
        "test_hostile_tokens.py",
        "test_replica_reads.py",
    ),
    "ratelimit": ("test_rate_limits.py", "test_checks.py", "test_settings.py"),
    "managers": REGISTRY_TESTS,
    "refresh": (*REGISTRY_TESTS, "test_dpop_binding.py"),
    # The reuse grace's rule, called by the managers' rotate.
    "grace": ("test_reuse_grace.py", "test_lifecycle.py", "test_concurrency.py"),
    "revocation": (
        "test_registry.py",
        "test_lifecycle.py",
        "test_cached_mode.py",
        "test_login_link_sessions.py",
        "test_events.py",
    ),
    "events": ("test_events.py", "test_registry.py"),
    # Moved out of managers.py, judged by the same tests.
    "issued": ("test_registry.py", "test_lifecycle.py", "test_cookies.py"),
    "passwords": (
        "test_registry.py",
        "test_lifecycle.py",
        "test_login_link.py",
        "test_secrets_at_rest.py",
    ),
    "models": (
        "test_registry.py",
        "test_lifecycle.py",
        "test_admin.py",
        "test_login_link.py",
        "test_login_link_sessions.py",
        "test_cached_mode.py",
        "test_hostile_tokens.py",
        "test_command.py::test_view*",
        "test_command.py::test_list*",
        "test_idle_timeout.py",
    ),
    "cookies": ("test_cookies.py", "test_login_csrf.py"),
    "login_links": (
        "test_login_link.py",
        "test_login_link_sessions.py",
        "test_impersonation.py",
        "test_admin.py",
        "test_secrets_at_rest.py",
        "test_command.py::test_cleanup*",
        "test_replica_reads.py",
        "test_events.py::test_a_used_login_link*",
    ),
    "primary": ("test_replica_reads.py",),
    # revoke/ and introspect/ (RFC 7009, RFC 7662): the lookups and the views.
    "oauth": (
        "test_revocation_endpoint.py",
        "test_introspection.py",
        "test_replica_reads.py::test_introspection*",
        "test_replica_reads.py::test_revoke*",
    ),
    "oauth_views": (
        "test_revocation_endpoint.py",
        "test_introspection.py",
        "test_hostile_bodies.py::test_fuzz_revoke*",
        "test_hostile_bodies.py::test_fuzz_introspect*",
        "test_replica_reads.py::test_introspection*",
    ),
    "permissions": ("test_step_up.py", "test_personal_tokens.py", "test_scopes.py"),
    # DPoP proofs: the JOSE side, the request checks and the replay guard, the nonces.
    "dpop": ("test_dpop_proofs.py", "test_dpop_claims.py", "test_dpop_replay.py"),
    "dpop_jose": ("test_dpop_proofs.py", "test_dpop_claims.py", "test_dpop_replay.py"),
    "dpop_nonces": ("test_dpop_replay.py",),
    "dpop_endpoints": ("test_dpop_binding.py",),
    "browser_sessions": (
        "test_login_link.py",
        "test_login_link_sessions.py",
        "test_impersonation.py",
        "test_admin.py",
        "test_secrets_at_rest.py",
        "test_command.py::test_cleanup*",
    ),
}

# Test files no mutant runs, and why. tools/mutation.py refuses to start while a test file is
# in neither list, so a new one is placed on purpose.
NOT_SELECTED: dict[str, str] = {
    "test_admin_browser.py": "a browser against a server in another process",
    "test_admin_scale.py": "the admin's list (admin/ is not a mutated module)",
    "test_cookies_browser.py": "a browser against a server in another process",
    "test_login_csrf_browser.py": "a browser against a server in another process",
    "test_live_server.py": "servers in other processes",
    "test_cached_mode_processes.py": "servers in other processes",
    "test_store.py": "the example store, in another process",
    "test_store_scopes.py": "the example store's scopes, in another process",
    "test_client_script.py": "the example client against a server in another process",
    "test_readme_commands.py": "the README's commands, in other processes",
    "test_bench.py": "the benchmark",
    "test_dependencies.py": "dependency floors",
    "test_openapi.py": "the OpenAPI schema",
    "test_scope_checks.py": "checks of personal tokens (scope_checks is not a mutated module)",
    "test_schemathesis.py": "the OpenAPI schemas against the views, minutes of fuzzing",
    "test_nested_json.py": "the JSON parser",
    "test_store_hostile.py": "the example store",
    "test_auth_no_store.py": "the views' Cache-Control headers",
    "test_docs_paths.py": "the documentation",
    "test_readme_snippet.py": "the README",
    "test_skip_banner.py": "the test suite's banner",
    "test_wheel_smoke.py": "the built wheel, in another process",
    "test_parsing.py": "parsing is not a mutated module",
    "test_redis_cluster.py": "needs a Redis Cluster (the mutation run has SQLite and local memory)",
    "test_pgbouncer.py": "needs PgBouncer, and runs the code in server and command processes",
    "test_redis_sentinel.py": "needs a Redis Sentinel set (the mutation run has local memory)",
    "test_redis_timeouts.py": "needs a redis-server of its own, stopped with SIGSTOP",
    "test_redis_replication.py": "store/replication.py, not a mutated module (Redis WAIT)",
    "test_round_trips.py": "needs PostgreSQL (postgres.py, not a mutated module: pipelined SQL)",
    "test_cached_lookup.py": "needs Redis (the mutation run has local memory)",
    "test_admin_events.py": "the security events' admin (admin/ is not a mutated module)",
    "test_migration_kinds.py": "a migration (not a mutated module; the run is --nomigrations)",
    "test_dpop_processes.py": "verifiers in other processes, on Redis",
}

STATS_FILE = "mutmut-stats.json"  # in mutants/, where mutmut runs pytest
MUTANT_VARIABLE = "MUTANT_UNDER_TEST"  # mutmut's: the mutant under test, or the phase

# Function -> tests that ran it but are outside its module's concept (the fallback).
_set_aside: defaultdict[str, set[str]] = defaultdict(set)


def concept_files() -> set[str]:
    """Every test file some module's concept names."""
    return {
        pattern.split("::", 1)[0] for patterns in CONCEPT_TESTS.values() for pattern in patterns
    }


def in_concept(module: str, nodeid: str) -> bool:
    """Whether the test ``tests/test_x.py::test_y[param]`` is one of ``module``'s."""
    patterns = CONCEPT_TESTS.get(module)
    if patterns is None:
        return True
    path, _, name = nodeid.partition("::")
    test = f"{Path(path).name}::{name}"
    return any(
        fnmatchcase(test, pattern if "::" in pattern else f"{pattern}::*") for pattern in patterns
    )


def _module_of(function: str) -> str:
    """``keys`` for ``cocart_jwt.keys.x_build_key`` or ``cocart_jwt.keys.xǁKeyRingǁsigner``,
    ``store.live`` for ``cocart_jwt.store.live.x_fill``."""
    return ".".join(function.split(".")[1:-1])


def _mutant_run() -> bool:
    """mutmut names the mutant under test ``module.x_function__mutmut_N``."""
    return "__mutmut_" in os.environ.get(MUTANT_VARIABLE, "")


def pytest_configure(config: pytest.Config) -> None:
    """Leave the objects already in memory out of garbage collection for this run.

    Each mutant's run is forked from a process that imported and collected the whole test
    selection; pytest collects garbage as it ends, and going through all of that took about a
    third of a second per mutant here. What the run itself allocates is still collected.

    In the stats run, also keep ``MUTANT_UNDER_TEST=stats`` out of the processes the tests
    start (``manage.py`` in a temporary folder, say): there the mutated code would look for
    mutmut's configuration in their working directory and fail. This process still records:
    mutmut keeps the name in a variable of its own as well.
    """
    gc.freeze()
    if os.environ.get(MUTANT_VARIABLE) == "stats":
        os.environ.pop(MUTANT_VARIABLE)
        config.add_cleanup(lambda: os.environ.setdefault(MUTANT_VARIABLE, "stats"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not _mutant_run() or not os.path.exists(STATS_FILE):
        return
    with open(STATS_FILE, encoding="utf-8") as stats:
        duration = json.load(stats)["duration_by_test"]
    items.sort(key=lambda item: (duration.get(item.nodeid, 0.0), item.nodeid))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: Any) -> None:
    """Before mutmut files this test under the functions it ran, drop the unrelated ones."""
    from mutmut.state import state

    hits = state()._stats
    if not hits:
        return
    nodeid = item.nodeid.removeprefix("mutants/")
    for function in list(hits):
        if not in_concept(_module_of(function), nodeid):
            hits.discard(function)
            _set_aside[function].add(nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A function no concept test ran keeps the tests that did run it."""
    if not _set_aside:
        return
    from mutmut.state import state

    recorded = state().tests_by_mangled_function_name
    for function, tests in _set_aside.items():
        if not recorded.get(function):
            recorded[function] |= tests
    _set_aside.clear()
