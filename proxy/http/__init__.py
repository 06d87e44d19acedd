"""Bytes on the wire, both sides. Knows nothing of routes' migration features, metrics or the
admin side; imports only `proxy.settings`, `proxy.errors` and `proxy.routing`'s backend data.

- `streams`: bodies in flight and write flow control, with backpressure between two connections
- `batch`: socket writes of one loop pass, sent together
- `messages`: a client's `Request`, the `Client` it is answered on, hop-by-hop header rules
- `exchange`: one exchange with a backend as data: `UpstreamRequest`, `Response`, `InterimSink`
- `connection`: one keep-alive connection to a backend, one exchange at a time
- `pool`: pools of those per backend, and `Upstreams.send`, the one forwarding interface
- `tls`: the `ssl.SSLContext` of each distinct `TlsOptions`
- `errors`: where foreign exceptions become `ProxyError`s (502/504)
- `tunnel`: connection upgrades, and the tunnel after a 101
"""
