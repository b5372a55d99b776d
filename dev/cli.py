"""`orderflow seed` and `orderflow demo`: the development room's commands, added to the CLI by starter.py in a
source checkout (the installed package has no demo world)."""

from __future__ import annotations

from typing import Annotated

import typer

from entrypoints.cli.app import CliError, client, command, engine, settings
from entrypoints.cli.output import emit


def add_dev_commands(cli: typer.Typer) -> None:
    @cli.command(name="seed")
    @command
    def seed_command() -> None:
        """Load the demo world (idempotent) and print the API tokens and console passwords of users created now."""
        from dev.seed import seed

        report = seed(engine())
        emit({"created": report.created, "tokens": report.tokens, "passwords": report.passwords})

    @cli.command(name="demo")
    @command
    async def demo(
        orders: Annotated[int, typer.Option(help="How many sample orders (at least 20).")] = 23,
        follow: Annotated[
            bool, typer.Option(help="Then wait for you to approve the order left for you, and take it to delivery.")
        ] = False,
    ) -> None:
        """Run the sample orders to signed receipt against the running stack, playing approvers and warehouse; one
        more order waits for finance in the console."""
        from dev.demo import run_demo

        ok = await run_demo(await client(), engine(), settings(), orders, follow=follow)
        if not ok:
            raise CliError("some demo orders did not reach their expected end state")
