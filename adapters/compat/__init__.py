"""Each library's private internals, behind one module per library, with the check that they still hold.

Nothing else in the project reaches past a library's public API: on an upgrade of Dramatiq or
redis-py, ``dramatiq.py`` or ``redis.py`` here is the one file to read, and its ``check_*`` (run at
a worker's and the ingress's boot) says at once what changed.
"""
