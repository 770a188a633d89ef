"""The contract between enclaved and its clients: the generated gRPC stubs (``v1``) and what
both sides must agree on beyond them (``paths``, ``handshake``, ``limits``).

The daemon (``enclaved``) and the client (``enclave``) both import this package and never
each other.
"""
