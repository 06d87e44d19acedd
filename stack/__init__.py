"""The local world: which processes make up the stack and how to start them.

`services()` is the single description of the stack. `make run` (``python -m stack``),
the test fixtures and the docker-compose check all read it, so they cannot drift apart.
"""
