"""Docker mode: the hub, PostgreSQL, Dask Gateway and a container per user on one engine.

Its parts: the stack (:mod:`.stack`, the compose file in :mod:`statbox.resources`), the
images (:mod:`.images`), the one engine client and helper runner (:mod:`.engine`), courses
in home volumes (:mod:`.volumes`, :mod:`.collect`), grading in containers (:mod:`.grading`)
and backups of the database and volumes (:mod:`.backup`).
"""
