"""The request path: the public listener and the forwarder that runs each request through
its steps (choose, shadow tee, send, fallback replay) and notifies observers at its end.
"""
