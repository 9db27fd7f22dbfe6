"""Pipeline tests use the ``shop`` fixture from tests/fixtures_pipeline.py."""

from tests.fixtures_pipeline import Shop, emu_now  # noqa: F401 - re-exported for the tests
