"""``manage.py jwt``: the session registry from the command line (CoCart's WP-CLI commands).

Subcommands: ``list``, ``view``, ``create``, ``destroy``, ``cleanup``, ``keygen``; each lives
in ``cocart_jwt/cli/``. See docs/commands.md for examples.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from cocart_jwt.cli.arguments import add_subcommands
from cocart_jwt.cli.cleanup import run_cleanup
from cocart_jwt.cli.keygen import run_keygen
from cocart_jwt.cli.output import Console, silence_stdout
from cocart_jwt.cli.sessions import run_create, run_destroy, run_list
from cocart_jwt.cli.view import run_view

SUBCOMMANDS: dict[str, Callable[[Console, dict[str, Any]], None]] = {
    "list": run_list,
    "view": run_view,
    "create": run_create,
    "destroy": run_destroy,
    "cleanup": run_cleanup,
    "keygen": run_keygen,
}


class Command(BaseCommand):
    help = (
        "Manage JWT sessions: list, view, create, destroy, cleanup, keygen. "
        "Run 'manage.py jwt <subcommand> --help' for each one."
    )
    # keygen must work while the keys are still missing or wrong; the subcommands that
    # need keys report a bad configuration themselves, as a CommandError.
    requires_system_checks: list[str] = []
    stealth_options = ("stdin",)

    def add_arguments(self, parser: CommandParser) -> None:
        add_subcommands(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        verbosity = int(options.get("verbosity", 1))
        console = Console(self.stdout, self.stderr, self.style, verbosity)
        try:
            SUBCOMMANDS[options["subcommand"]](console, options)
        except ImproperlyConfigured as exc:
            raise CommandError(f"COCART_JWT is misconfigured: {exc}") from exc
        except BrokenPipeError:
            # The reader went away (``jwt list | head``): stop quietly, as Unix tools do.
            silence_stdout()
