"""Today's workflow code must replay the histories of runs already in flight.

A change to a workflow's decisions that is not gated by ``workflow.patched()`` makes one of
these replays fail with a non-determinism error, before it can break a running plan. Histories
are recorded by the tests that produce them (CAREPATH_RECORD_HISTORIES=1 make test) and
committed; each file is named for the workflow and the version of its code that recorded it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from core.temporal import DATA_CONVERTER
from workers.factory import WORKFLOW_RUNNER, WORKFLOWS

DIRECTORY = Path(__file__).parent / "histories"
HISTORIES = sorted(p for p in DIRECTORY.glob("*.json") if p.name != "workflow_ids.json")
TEXTS = {path.stem: path.read_text() for path in HISTORIES}
# The workflow id each history was recorded under (older files were recorded under their name).
IDS: dict[str, str] = json.loads((DIRECTORY / "workflow_ids.json").read_text())


def test_histories_cover_every_long_running_workflow() -> None:
    prefixes = {path.stem.split("_v")[0] for path in HISTORIES}
    assert {
        "pathway",
        "prescription",
        "message_delivery",
        "message_batch",
        "push_outbox",
        "payment",
        "refund",
        "consultation",
        "complaint",
        "exam",
        "nursing",
    } <= prefixes


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_recorded_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(IDS.get(path.stem, path.stem), TEXTS[path.stem])
    # The runner the workers use, so that replay checks what production runs.
    replayer = Replayer(
        workflows=WORKFLOWS, data_converter=DATA_CONVERTER, workflow_runner=WORKFLOW_RUNNER
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None
