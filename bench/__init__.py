"""`python -m bench`: the proxy benchmark (direct, through the proxy, through nginx) and the
gateway benchmark (legacy vs DRF under gunicorn).

See `bench.__main__`; results go to bench/results/latest.json and bench/results/gateways.json.
"""
