"""The work behind `plano traces`: read the local trace store, print it for people or scripts.

One job per module: `args` parses --since and --where, `access` opens the store and finds
traces, `queries` reads what the store has no method for, `trace_model` makes a span tree
and a routing decision of one trace, `payloads` builds the JSON shapes, `render_*` print
text, `tail` follows new requests, and `run` ties each command together.

Only `keys` is imported at CLI start-up; the rest (rich, the store) when a command runs.
"""
