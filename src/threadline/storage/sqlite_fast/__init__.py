"""The SQLite fast path: SQLite's calls made in place on the event loop, one held
connection per event loop for writes and one for reads, and the statements every
run executes compiled once and run straight on ``sqlite3``.

It is an optimisation of one engine, fenced here: ``Database(url, fast_path=False)``
(``THREADLINE_SQLITE_FAST_PATH=false``) runs SQLite on plain aiosqlite through
SQLAlchemy, and the storage and engine suites run both ways. What it does on
private internals (aiosqlite's request queue, the DBAPI connection under
SQLAlchemy's) is confined to ``inline``; ``prepared`` converts only the column types
it names and refuses the others when a statement is built.

Measured on a 2-core host (``bench/runs.py``, an instant model, SQLite, concurrency
32): see ``docs/architecture.md`` for the numbers with the path on and off.
"""
