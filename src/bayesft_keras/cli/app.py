import functools
import importlib.metadata
import os
import sys

import typer

from bayesft_keras.cli.help_format import App

# Below the CLI, so that the bridge's own command line shares it.
from bayesft_keras.utils.values import UsageError

app = App(
    name="bayesft-keras",
    help="ReRAM drift simulation and BayesFT dropout search for Keras 3.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def package_version():
    """The installed distribution's version; a source tree that is not installed: `__version__`."""
    try:
        return importlib.metadata.version("bayesft-keras")
    except importlib.metadata.PackageNotFoundError:
        import bayesft_keras

        return bayesft_keras.__version__


def _print_version(value):
    if value:
        typer.echo(f"bayesft-keras {package_version()}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Show the version and exit."
    ),
):
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
