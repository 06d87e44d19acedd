"""`python -m bench`: requests/s and latency of a backend direct, through the proxy, through nginx.

See `bench.__main__` for what runs; results go to bench/results/latest.json.
"""
