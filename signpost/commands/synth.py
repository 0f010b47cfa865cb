"""``signpost synth``: the generator's own :func:`signpost.synth.add_arguments` and :func:`signpost.synth.run`.

The synthetic data package keeps its command line next to it (tests and
benchmarks call it directly); this module only gives it the shape every command
has, and must never add arguments of its own.
"""

from __future__ import annotations

import argparse

from signpost import synth


def add_arguments(parser: argparse.ArgumentParser) -> None:
    synth.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    return synth.run(args)
