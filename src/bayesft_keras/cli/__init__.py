"""The `bayesft-keras` command line.

Each command lives in a module of this package and registers itself on `app`;
errors a user can fix are reported as one line on stderr with exit code 2.
"""

from bayesft_keras.cli.app import app
from bayesft_keras.cli.app import main

# Importing a command module registers its command.
from bayesft_keras.cli import info  # noqa: E402,F401
from bayesft_keras.cli import evaluate  # noqa: E402,F401
from bayesft_keras.cli import tune  # noqa: E402,F401
from bayesft_keras.cli import study  # noqa: E402,F401
from bayesft_keras.cli import launch  # noqa: E402,F401
from bayesft_keras.cli import report  # noqa: E402,F401

__all__ = ["app", "main"]
