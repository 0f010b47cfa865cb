"""Signpost's application shell: the ``signpost`` command, the local demo, synthetic data, benchmarks.

This is the top floor: it imports the broker (:mod:`broker`), the node agent
(:mod:`node`), the shared kernel (:mod:`core`), the PKI (:mod:`certs`) and the
wire contract (:mod:`protos`), and nothing below imports it.
"""

from core import __version__

__all__ = ["__version__"]
