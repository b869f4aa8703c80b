"""The legacy side of the sandbox: the department application that runs inside each legacy
machine (``app.py``, standard library + psycopg2 only) and the deterministic seeding of
those machines from the manifests (``seed.py``)."""
