"""The one way a command reports a problem the user can fix."""
from __future__ import annotations

import click


class Failure(click.ClickException):
    """A problem the user can fix: one sentence on stderr, exit status 2."""

    exit_code = 2

    def show(self, file=None):
        click.echo(f"ispflow: {self.format_message()}", err=True)


def fail(message: str):
    raise Failure(message)
