import functools
import os
import sys

import typer

# Below the CLI, so that the bridge's own command line shares it.
from bayesft_keras.utils.values import UsageError

app = typer.Typer(
    name="bayesft-keras",
    help="ReRAM drift simulation and BayesFT dropout search for Keras 3.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root():
    """ReRAM drift simulation and BayesFT dropout search for Keras 3."""


def fail(message):
    """Prints `message` as one line on stderr and exits with code 2."""
    typer.echo(f"Error: {message}", err=True)
    raise typer.Exit(code=2)


def user_errors(fn):
    """Turns input errors raised inside a command into one line and exit code 2.

    Set BAYESFT_KERAS_DEBUG=1 to get the traceback instead.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (UsageError, ValueError, FileNotFoundError) as e:
            if os.environ.get("BAYESFT_KERAS_DEBUG"):
                raise
            fail(" ".join(str(e).split()))

    return wrapper


def main():
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("Interrupted.", err=True)
        sys.exit(130)
