"""The API wired to the time-skipping server, as tests/api has it."""

from tests.api.conftest import his_sim, skipping_api

__all__ = ["his_sim", "skipping_api"]
