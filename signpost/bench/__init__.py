"""Benchmarks: they print figures and write JSON; they assert nothing about time.

``signpost bench accuracy`` and ``signpost bench speed`` (matching), more to come.
Results go to ``bench-results/`` by default (ignored by git); the README quotes
the figures with the command that reproduces them.
"""
