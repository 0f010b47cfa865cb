"""The federation broker: the practitioners' HTTPS API and the fan-out to every node.

The broker holds no children's data. It validates a search, asks every
authority's node over mutually authenticated gRPC, and returns who has a
contact — plus exactly which authorities could not be asked. It never logs,
stores or echoes in an error a child's name, date of birth, address or NHS number.
"""
