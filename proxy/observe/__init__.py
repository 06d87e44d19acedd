"""What the proxy tells about itself: Prometheus metrics, the access log, statistics over
windows, and cross-worker sharing.
"""
