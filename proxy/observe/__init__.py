"""What the proxy tells about itself: Prometheus metrics and the one way to read them back
(`metrics`), the access log (`accesslog`), statistics over windows (`stats`), the fallback debt
registry (`debt`), and cross-worker sharing (`sharing`). Knows nothing of the request path's
steps or the admin side.
"""
