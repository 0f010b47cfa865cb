"""The practitioner portal: server-rendered pages (GOV.UK Design System) where practitioners sign in with
their own authority's identity provider and search, through the broker's one search path.

``signin`` is the seam with the OpenID Connect sign-in (``oidc``, ``config``); ``sessions`` keeps who is
signed in, server-side, and their CSRF tokens; ``routes`` answers the pages, ``form`` reads the search
form into the API's request, ``wording`` puts answers into plain English, ``recent`` reads a user's own
searches back from the audit log, ``pages`` renders (autoescaped Jinja2) and ``paths`` names the addresses.
"""
