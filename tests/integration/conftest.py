"""The API fixtures the browser test of uploads serves on a port (defined with the API tests)."""

from tests.api.conftest import api, form_task, his_sim

__all__ = ["api", "form_task", "his_sim"]
