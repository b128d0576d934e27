"""Helpers shared by the test suite, imported as ``tests.support.<module>``.

Fixtures live in ``conftest.py`` files; everything a test imports lives here:

- ``servers``: the test API keys, the database engines, fresh PostgreSQL
  databases, settings, and servers of one's own (``serve``/``Served``).
- ``spec_schema``: checks of wire objects against the spec's schemas, loaded
  from ``spec_schemas.json`` (derived by ``scripts/derive_spec_schemas.py``).
- ``runs``: assistants, scripted threads, polling and an SSE reader for run tests.
- ``model_events``: reading a model backend's event stream directly.
"""
