"""strangler: a strangler-fig migration proxy."""

from proxy import speedups

# Before any hot-path module is imported: compiled (mypyc) where built and current, else the
# Python source (`STRANGLER_NO_EXTENSIONS=1`, or a stale build). See proxy/speedups.py.
HOT_PATH_MODE = speedups.install()
