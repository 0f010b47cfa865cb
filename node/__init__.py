"""The node agent: one authority's records, matched on request for the federation broker.

A node is the only place an authority's children's records live in Signpost.
It answers the broker's Match calls over mutually authenticated gRPC and
refuses every other caller; it never sends a record's identity fields back —
only the contacts a searcher is allowed to see.
"""
