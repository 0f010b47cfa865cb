"""The federation's public-key infrastructure: a CA and the certificates it issues.

Every party in a Signpost federation is identified by a certificate from the
federation CA; the certificate's subject-alternative-name URI says which party
it is (see :mod:`certs.identity`). This package never writes a private key
anywhere but the directory it is given, and always with mode 0600.
"""
