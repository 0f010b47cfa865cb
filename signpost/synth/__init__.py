"""Synthetic children's-services records with known ground truth.

Builds an invented population of children in households across English local
authorities, decides which authorities hold a record of each child, renders
those records as records CSV rows (contract section 3) with the disagreements
real systems have (nicknames, typos, old surnames and addresses, swapped day
and month, missing fields), and builds a query set whose right answers are
known.

Everything is invented: names come from lists, NHS numbers start with 9 (never
issued to patients; 999 is the official test range, too small on its own for
millions of children), phones are Ofcom drama numbers. The generator
must never read real data, the clock or the global random state: one config
gives byte-identical files.

Generation runs in two phases so that huge outputs can be streamed: a plan
(people, who holds whom, record ids, truth and queries) and then the rendering
of rows, authority by authority, which is the last consumer of the random
stream. :func:`generate` renders everything into memory; :func:`generate_to`
renders straight into files and writes the same bytes as
``write(generate(config), out_dir)``.

The package has a module per job: :mod:`~signpost.synth.config` (what to
generate), :mod:`~signpost.synth.population` (the people),
:mod:`~signpost.synth.plan` (who holds whom), :mod:`~signpost.synth.queries`
(the query set), :mod:`~signpost.synth.render` (rows), :mod:`~signpost.synth.files`
(the files written), :mod:`~signpost.synth.build` (running it all),
:mod:`~signpost.synth.command` (``signpost synth``) and
:mod:`~signpost.synth.names` (reference tables and name rules).
"""

from __future__ import annotations

from signpost.synth.build import generate, generate_to
from signpost.synth.command import add_arguments, run
from signpost.synth.config import (
    ENGLISH_AUTHORITIES,
    POSTCODE_DISTRICTS,
    REFERENCE_DATE,
    SynthConfig,
    SynthResult,
    config_for,
)
from signpost.synth.files import COLUMNS, write

__all__ = [
    "COLUMNS",
    "ENGLISH_AUTHORITIES",
    "POSTCODE_DISTRICTS",
    "REFERENCE_DATE",
    "SynthConfig",
    "SynthResult",
    "add_arguments",
    "config_for",
    "generate",
    "generate_to",
    "run",
    "write",
]
