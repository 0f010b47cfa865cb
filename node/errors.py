"""Errors raised by the node agent.

    NodeError
    ├── ImportFileError      the CSV as a whole cannot be read (missing columns, not UTF-8)
    ├── StoreError           the node's own database failed
    ├── MatchRequestError    a Match request that cannot be answered (bad subject)
    ├── DeliveryError        a notification the mail relay or webhook did not take (node.delivery)
    └── SourceError          the authority's database ([source]) could not be read; the message names the key
        ├── SourceUnusable   the config does not fit the database (a missing column, a failing query): fix it
        └── SourceUnavailable   the database cannot be reached now (down, bad credentials, a timeout): retried

Row-level problems in an import are not exceptions: they are collected as
:class:`node.records.RowError` so that good rows are kept.
"""


class NodeError(Exception):
    """Base of every node agent error."""


class ImportFileError(NodeError):
    """The import file cannot be read at all."""


class StoreError(NodeError):
    """The node's store could not be read or written."""


class MatchRequestError(NodeError):
    """A Match request whose subject cannot be matched; the message is safe to return."""


class DeliveryError(NodeError):
    """A notification was not accepted; the message names the channel and the failure, never the content."""


class SourceError(NodeError):
    """The authority's database could not be read. The message is one sentence that names the config key
    and never carries the password or a value from a row."""


class SourceUnusable(SourceError):
    """The ``[source]`` config does not fit the database: retrying will not help until someone edits it."""


class SourceUnavailable(SourceError):
    """The database could not be reached or did not answer in time; worth trying again later."""
