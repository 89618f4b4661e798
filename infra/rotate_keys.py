"""``python -m infra.rotate_keys``: re-encrypt personal data under the current data key (SEC-4).

Rotation, step by step:
  1. add the new key to CAREPATH_DATA_KEYS beside the old one and make it CAREPATH_DATA_KEY_ID;
  2. restart the API and the worker (new values are now sealed with the new key);
  3. ``python -m infra.rotate_keys`` starts the KeyRotation workflow on the worker, which
     re-encrypts the older rows in batches and survives restarts (``--wait`` waits for it);
  4. ``python -m infra.rotate_keys --status`` counts, per table, the rows still under an older
     key; at 0 everywhere the old key may be removed from CAREPATH_DATA_KEYS.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from temporalio.common import WorkflowIDConflictPolicy

from contracts.key_rotation import (
    KEY_ROTATION_WORKFLOW,
    KEY_ROTATION_WORKFLOW_ID,
    KeyRotationInput,
    KeyRotationResult,
)
from core.crypto import configure_from_settings
from core.db import create_engine, session_factory
from core.settings import get_settings
from core.temporal import connect_temporal
from services.key_rotation import rows_under_old_keys


async def _status() -> dict[str, int]:
    settings = get_settings()
    keyring = configure_from_settings(settings)
    engine = create_engine(settings.database_url)
    try:
        async with session_factory(engine)() as session:
            return await rows_under_old_keys(session, keyring.current)
    finally:
        await engine.dispose()


async def _start(batch_size: int, wait: bool) -> KeyRotationResult | None:
    settings = get_settings()
    client = await connect_temporal(settings)
    handle = await client.start_workflow(
        KEY_ROTATION_WORKFLOW,
        KeyRotationInput(batch_size=batch_size),
        id=KEY_ROTATION_WORKFLOW_ID,
        task_queue=settings.temporal_task_queue,
        # A rotation already running is joined, not started twice.
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        result_type=KeyRotationResult,
    )
    print(f"key rotation workflow {handle.id} (run {handle.result_run_id}) started")
    if not wait:
        return None
    result: KeyRotationResult = await handle.result()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.rotate_keys", description=__doc__)
    parser.add_argument("--status", action="store_true", help="count rows under older keys")
    parser.add_argument("--wait", action="store_true", help="wait for the rotation to finish")
    parser.add_argument("--batch-size", type=int, default=200)
    args = parser.parse_args(argv)
    if args.status:
        counts = asyncio.run(_status())
        for table, n in counts.items():
            print(f"{table}: {n}")
        return 0 if not any(counts.values()) else 1
    result = asyncio.run(_start(args.batch_size, args.wait))
    if result is not None:
        print(f"{result.rows} rows re-encrypted in {result.batches} batches; key {result.key_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
