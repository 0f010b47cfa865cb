"""The ``signpost`` subcommands, one module per command group (contract section 1).

Each module has ``add_arguments(parser)``, which declares the command's flags
and subcommands, and ``run(args) -> int``, which hands over to the module that
does the work and returns the exit code; :mod:`signpost.cli` assembles them into
one parser and dispatches. Configuration is loaded here, with ``os.environ``
passed in, so no module below the command line reads the environment. A command
module must never do the work itself: it parses, hands over and prints.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    """One subcommand: its name and one-line help in ``signpost --help``, and its module's two functions."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
