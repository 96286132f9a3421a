"""Print the statutory due date of a rights request: `manage.py due_date 2024-11-25` -> `2024-12-27`."""

import argparse
import re
import sys
from datetime import date
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from requests_engine.deadlines import JURISDICTIONS, statutory_due_date

# Exit status for every bad argument, as argparse uses on its own.
BAD_ARGUMENT = 2


def _iso_date(value: str) -> date:
    # date.fromisoformat alone would also take "20241125"; the interface is YYYY-MM-DD only.
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            return date.fromisoformat(value)
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"must be a real date written YYYY-MM-DD (got {value!r})")


class Command(BaseCommand):
    help = "Print the statutory due date (YYYY-MM-DD) of a rights request received on DATE."
    requires_system_checks: list[str] = []  # pure date arithmetic: no models, no database

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("received", type=_iso_date, metavar="DATE", help="relevant time, YYYY-MM-DD")
        parser.add_argument("--jurisdiction", default="england-and-wales", choices=JURISDICTIONS)
        parser.add_argument("--extension-months", type=int, default=0, metavar="N", help="0 to 2")
        parser.add_argument("--paused-days", type=int, default=0, metavar="N", help="clarification days")

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        # From the command line argparse would print its usage block and exit; make it raise CommandError
        # instead, so run_from_argv can end every bad argument the same way: one line, exit status 2.
        parser.called_from_command_line = False
        return parser

    def run_from_argv(self, argv: list[str]) -> None:
        try:
            super().run_from_argv(argv)
        except CommandError as exc:
            # Only parse errors get here: Django itself reports CommandError raised by handle().
            if "--traceback" in argv:
                raise
            message = str(exc).removeprefix("Error: ").replace("\n", " ")
            self.stderr.write(f"CommandError: {message}")
            sys.exit(BAD_ARGUMENT)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            due = statutory_due_date(
                options["received"],
                jurisdiction=options["jurisdiction"],
                extension_months=options["extension_months"],
                paused_days=options["paused_days"],
            )
        except ValueError as exc:
            raise CommandError(str(exc), returncode=BAD_ARGUMENT) from exc
        self.stdout.write(due.isoformat())
