"""The shared kernel: the rules and plumbing both the broker and the nodes stand on.

Everything here is one floor below :mod:`broker` and :mod:`node` (which never
import each other) and imports nothing of Signpost's but :mod:`protos`:

- :mod:`core.identifiers` — the postcode grammar, NHS numbers, dates of birth;
- :mod:`core.names` — folding and splitting names the same way everywhere;
- :mod:`core.addresses` — an address's house number and street word (what makes it a home);
- :mod:`core.subject` — the one type for the searched child, and the minimum query;
- :mod:`core.config` — TOML readers with environment overrides;
- :mod:`core.tasks`, :mod:`core.lifecycle` — background loops, stopping on signals;
- :mod:`core.logs` — structlog set-up; :mod:`core.stats` — percentiles.

Nothing in this package logs a child's details or puts them in an error message.
"""

__version__ = "0.1.0"
