"""Temporal servers for tests and benchmarks, from the cached binaries (never downloaded)."""

from __future__ import annotations

from datetime import timedelta

from temporalio.testing import WorkflowEnvironment

from core.temporal import DATA_CONVERTER
from infra.toolchain import temporal_cli, test_server_script

# A JVM on a busy 2-core machine can take several seconds to open its port.
TEST_SERVER_STARTUP = timedelta(seconds=90)
DEV_SERVER_STARTUP = timedelta(seconds=60)


async def start_dev_server() -> WorkflowEnvironment:
    return await WorkflowEnvironment.start_local(
        data_converter=DATA_CONVERTER,
        dev_server_existing_path=str(temporal_cli()),
        dev_server_startup_timeout=DEV_SERVER_STARTUP,
        dev_server_log_level="error",
    )


async def start_time_skipping_server() -> WorkflowEnvironment:
    return await WorkflowEnvironment.start_time_skipping(
        data_converter=DATA_CONVERTER,
        test_server_existing_path=str(test_server_script()),
        test_server_startup_timeout=TEST_SERVER_STARTUP,
    )
