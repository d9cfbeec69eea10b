"""The arguments of ``manage.py jwt`` and of each of its subcommands."""

from __future__ import annotations

import argparse

from django.core.management.base import CommandParser

from cocart_jwt.choices import Status
from cocart_jwt.keys import KNOWN_ALGORITHMS
from cocart_jwt.parsing import DURATION_EXAMPLES

from .cleanup import DEFAULT_BATCH_SIZE, MAX_BATCH_SIZE
from .keygen import RSA_DEFAULT_BITS

STATUSES = (*Status.values, "all")


def add_common_options(parser: CommandParser) -> None:
    """Django's own options, accepted after the subcommand too (``jwt cleanup -v 2``)."""
    suppress = argparse.SUPPRESS
    parser.add_argument(
        "-v",
        "--verbosity",
        type=int,
        choices=[0, 1, 2, 3],
        default=suppress,
        help="Verbosity level; 0=minimal output, 1=normal output, 2=verbose output.",
    )
    parser.add_argument("--settings", default=suppress, help=argparse.SUPPRESS)
    parser.add_argument("--pythonpath", default=suppress, help=argparse.SUPPRESS)
    parser.add_argument("--traceback", action="store_true", default=suppress, help=suppress)
    parser.add_argument("--no-color", action="store_true", default=suppress, help=suppress)
    parser.add_argument("--force-color", action="store_true", default=suppress, help=suppress)


def add_subcommands(parser: CommandParser) -> None:
    subparsers = parser.add_subparsers(
        dest="subcommand", required=True, metavar="<subcommand>", title="subcommands"
    )

    sub = subparsers.add_parser(
        "list",
        help="List sessions: id, user, kind, scopes, description, times, IP, status.",
        description="List sessions, newest first, as a table or as JSON (streamed).",
    )
    sub.add_argument("--user", help="Only this user's sessions (username, email or id).")
    sub.add_argument(
        "--status",
        choices=STATUSES,
        default="all",
        help="Only sessions with this status (default: all).",
    )
    sub.add_argument(
        "--format",
        choices=("table", "json"),
        default="table",
        help="table (default) for people, json (an array) for scripts.",
    )
    add_common_options(sub)

    sub = subparsers.add_parser(
        "view",
        help="Show a session, or an access token's header, claims and session.",
        description=(
            "Show a session by id, or an access token: its header and claims, whether "
            "its signature and expiry verify, and its session. Exits non-zero when the "
            "token would be refused. Refresh tokens are never shown."
        ),
    )
    sub.add_argument(
        "token_or_id",
        help="A session id or an access token (an id starting with '-' goes after '--').",
    )
    add_common_options(sub)

    sub = subparsers.add_parser(
        "create",
        help="Create a session for a user and print its tokens once.",
        description="Create a session for a user and print its access (and refresh) token.",
    )
    sub.add_argument("user", help="Username, email or id.")
    sub.add_argument(
        "--ttl",
        help=f"Lifetime of the session: {DURATION_EXAMPLES} (default: ADMIN_TOKEN_LIFETIME, 24h; "
        "with --scope at most PAT_MAX_LIFETIME).",
    )
    sub.add_argument("--refreshable", action="store_true", help="Also issue a refresh token.")
    sub.add_argument(
        "--scope",
        dest="scopes",
        action="append",
        metavar="NAME",
        help=(
            "Make a personal access token carrying this scope, a name of SCOPES (repeat for "
            "more); it is named by --description and never refreshable."
        ),
    )
    sub.add_argument(
        "--claims",
        help=(
            'Additional claims, a JSON object of data: \'{"tenant": "acme"}\'. They grant '
            "nothing; scope, client_id, cnf, auth_time, typ and the registered claims are refused."
        ),
    )
    sub.add_argument("--description", default="", help="What the session is for.")
    sub.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="text (default), or json: the login endpoint's token pair.",
    )
    add_common_options(sub)

    sub = subparsers.add_parser(
        "destroy",
        help="Revoke a user's sessions (asks first).",
        description=(
            "Revoke live sessions: all of a user's, some by --id, or everyone's with "
            "--all-users. Shows what it will revoke and asks; without a terminal it "
            "refuses unless --noinput."
        ),
    )
    sub.add_argument("user", nargs="?", help="Username, email or id.")
    sub.add_argument(
        "--id",
        dest="ids",
        action="append",
        metavar="ID",
        help="Only this session (repeat for more; --id=ID for an id starting with '-').",
    )
    sub.add_argument("--all-users", action="store_true", help="Revoke every user's live sessions.")
    sub.add_argument(
        "--noinput",
        "--no-input",
        action="store_false",
        dest="interactive",
        help="Do not ask for confirmation (for scripts).",
    )
    add_common_options(sub)

    sub = subparsers.add_parser(
        "cleanup",
        help="Delete sessions expired or revoked longer ago than --older-than.",
        description=(
            "Delete sessions (and their refresh tokens) that expired or were revoked "
            "longer ago than --older-than, in batches of short transactions. Live "
            "sessions are never touched; safe to run from cron on a live site."
        ),
    )
    sub.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        help=f"Sessions per batch and transaction (default "
        f"{DEFAULT_BATCH_SIZE}, at most {MAX_BATCH_SIZE}).",
    )
    sub.add_argument("--dry-run", action="store_true", help="Only count what would be deleted.")
    sub.add_argument(
        "--older-than",
        help=f"Grace period: {DURATION_EXAMPLES} (default 7d). 0 deletes all dead sessions.",
    )
    add_common_options(sub)

    sub = subparsers.add_parser(
        "keygen",
        help="Generate a signing key: an HS secret or an RS/PS/ES key pair.",
        description=(
            "Generate key material for COCART_JWT: a random secret for HS256/384/512, "
            "a PEM private and public key for RS*/PS* (RSA) and ES* (EC)."
        ),
    )
    sub.add_argument(
        "--algorithm",
        help=f"One of {KNOWN_ALGORITHMS} (default: the configured ALGORITHM).",
    )
    sub.add_argument(
        "--bits",
        type=int,
        help=f"RSA key size (default {RSA_DEFAULT_BITS}, at least 2048).",
    )
    sub.add_argument(
        "--out", help="Write the key to this file (and the public key to OUT.pub), mode 0600."
    )
    sub.add_argument("--force", action="store_true", help="Overwrite existing --out files.")
    add_common_options(sub)
