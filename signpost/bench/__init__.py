"""Benchmarks: they print figures and write JSON; they assert nothing about time.

One module per benchmark (accuracy, speed, source, soak, scale, floor), with scale's parts beside it
(deployment, load, overload, figures). Every report carries a calibration measured in the same run
(calibration), so figures can be compared between machines. Results go to ``bench-results/`` by
default (ignored by git); the README quotes the figures with the command that reproduces them.
"""
