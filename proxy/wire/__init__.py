"""Wire formats: one module per API, converting to and from proxy.canonical.

Each module serves both directions: a client speaking that API (parse its request,
render the response or stream), and an upstream speaking it (build the request, parse
the response or stream).
"""
