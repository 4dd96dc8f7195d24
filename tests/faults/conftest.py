"""Fault tests reuse the end-to-end fixtures: real workers, real PostgreSQL and Redis."""

from tests.e2e.conftest import start_worker  # noqa: F401 - a fixture, imported to share it
