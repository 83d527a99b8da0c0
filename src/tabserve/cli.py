"""The `tabserve` command: parse options, call the package, print with rich. No logic here.

Heavy modules (scikit-learn, pandas, the server) are imported inside each command so that
`tabserve --help` and `tabserve serve` start fast.
"""

from __future__ import annotations

import sys
from typing import NoReturn

import typer
from rich.console import Console

from tabserve.errors import TabserveError
from tabserve.settings import Settings

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Train, register, serve, monitor and deploy tabular scikit-learn models.",
)
models_app = typer.Typer(no_args_is_help=True, help="List, show, promote and delete registered models.")
data_app = typer.Typer(no_args_is_help=True, help="Put example data where training can read it.")
monitor_app = typer.Typer(help="Drift, live accuracy and feedback from the prediction log.")
app.add_typer(models_app, name="models")
app.add_typer(data_app, name="data")
app.add_typer(monitor_app, name="monitor")

console = Console()
err_console = Console(stderr=True)


def fail(error: TabserveError) -> NoReturn:
    """Print one line that says what is wrong and what to do, and exit with code 2."""
    err_console.print(f"[bold red]error:[/] {error.message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


def settings() -> Settings:
    """The settings from the environment (TABSERVE_*)."""
    return Settings()


# --- train --------------------------------------------------------------------------------

# --- import -------------------------------------------------------------------------------

# --- predict ------------------------------------------------------------------------------

# --- models -------------------------------------------------------------------------------

# --- data ---------------------------------------------------------------------------------

# --- serve --------------------------------------------------------------------------------

# --- monitor ------------------------------------------------------------------------------

# --- deploy / build -----------------------------------------------------------------------


def main() -> None:
    """Console-script entry point: TabserveError becomes one line on stderr and exit code 2."""
    try:
        app()
    except TabserveError as error:  # raised outside a command's own handler
        err_console.print(f"[bold red]error:[/] {error.message}", highlight=False, soft_wrap=True)
        sys.exit(2)
