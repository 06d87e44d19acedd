"""The new gateway: Django REST Framework serving the public API from the source systems.

No database and no models: every request fans out to the source systems (see `backends`),
and objects are built from their records by the pure functions in `objects`.
"""
