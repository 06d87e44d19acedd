"""Bytes on the wire, both sides: streams and flow control, write batching, upstream
connections and their pools, TLS, tunnels. Knows nothing of routes' migration features,
metrics or the admin side.
"""
