"""Records workflow histories for the replay test: ``python -m tests.workflows.record_histories``.

Run it when a workflow version ships, and commit the new JSON files next to the old ones. Never
regenerate an existing file: the replay test exists to prove that today's code still replays the
histories that running workflows already have.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
import uuid
from datetime import timedelta
from pathlib import Path

from core.db import create_engine, session_factory
from pathways.catalog import load_catalog
from tests.conftest import make_settings
from tests.factories import add_patient, eventually, running_worker
from tests.harness.databases import clone_database, create_template
from tests.harness.postgres import start_postgres
from tests.harness.temporal import start_time_skipping_server
from workflows.contracts import (
    QUERY_PROGRESS,
    SIGNAL_SUBMIT_ANSWERS,
    AnswerSubmission,
    FollowUpInput,
    RunProgress,
    followup_workflow_id,
)
from workflows.followup import FollowUpWorkflow

HISTORIES = Path(__file__).with_name("histories")
DAY = timedelta(days=1)


async def record(name: str, phone: str, answer_day3: bool) -> None:
    target = HISTORIES / f"{name}.json"
    if target.exists():
        sys.stderr.write(f"{target} exists; histories are never regenerated\n")
        return
    base = Path(tempfile.mkdtemp(prefix="carepath-rec-"))
    server = start_postgres(base)
    env = await start_time_skipping_server()
    try:
        await create_template(server)
        url = server.url(await clone_database(server))
        engine = create_engine(url)
        sessions = session_factory(engine)
        settings = make_settings(database_url=url)
        patient, encounter = await add_patient(sessions, phone=phone)
        task_queue = f"record-{uuid.uuid4()}"
        anchor = await env.get_current_time()
        async with running_worker(env.client, task_queue, settings, sessions):
            handle = await env.client.start_workflow(
                FollowUpWorkflow.run,
                FollowUpInput(
                    patient_id=patient.id,
                    encounter_id=encounter.id,
                    department_code=encounter.department_code,
                    anchor_at=anchor,
                    snapshot=load_catalog().snapshot("inpatient-discharge"),
                ),
                id=followup_workflow_id(
                    "inpatient-discharge", patient.his_patient_id, encounter.his_encounter_id
                ),
                task_queue=task_queue,
            )
            if answer_day3:
                await env.sleep(3 * DAY + timedelta(hours=1))

                async def sent() -> bool:
                    progress = await handle.query(QUERY_PROGRESS, result_type=RunProgress)
                    return bool(progress.steps[0].status == "sent")

                await eventually(sent)
                await handle.signal(
                    SIGNAL_SUBMIT_ANSWERS,
                    AnswerSubmission(
                        step_id="day3",
                        answers={
                            "overall": ["poor"],
                            "symptoms": ["fever"],
                            "medication": ["on_time"],
                        },
                        submitted_at=await env.get_current_time(),
                    ),
                )
            await handle.result()
            history = await handle.fetch_history()
        await engine.dispose()
        HISTORIES.mkdir(exist_ok=True)
        target.write_text(history.to_json())
        sys.stderr.write(f"recorded {target} ({len(history.events)} events)\n")
    finally:
        await env.shutdown()
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


async def main() -> None:
    await record("followup_v1_abnormal_then_lost", "13800138001", answer_day3=True)
    await record("followup_v1_undeliverable", "010-8888 6666", answer_day3=False)


if __name__ == "__main__":
    asyncio.run(main())
