"""SEC-3: no log line the suite produced carries a patient's phone number, ID-card number, name
or link token in the clear: this process's log, every process the tests started (API, worker,
simulators: their logs are under pytest's temporary directory) and PostgreSQL's server log."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.logs import mask_text
from harness.postgres import PostgresServer
from simulators.his.app import HisState
from tests.conftest import PROCESS_LOG


def _patient_names() -> set[str]:
    # The HIS simulator's patients are the ones every flow in the suite enrols.
    return {patient.name for patient in HisState.seeded().patients.values()}


def _leaks(path: Path, names: set[str]) -> list[str]:
    leaks = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if mask_text(line) != line or any(name in line for name in names):
            # Quote the masked line: the report itself must not repeat the leak.
            shown = mask_text(line)
            for name in names:
                shown = shown.replace(name, name[0] + "*")
            leaks.append(f"{path}:{number}: {shown[:300]}")
    return leaks


@pytest.mark.after_all_others
def test_no_patient_identifier_in_any_log(
    tmp_path_factory: pytest.TempPathFactory, postgres: PostgresServer
) -> None:
    base = tmp_path_factory.getbasetemp()
    logs = [*base.rglob("*.log"), *postgres.data_dir.parent.rglob("*.log")]
    assert base / PROCESS_LOG in logs
    names = _patient_names()
    leaks = [leak for path in logs for leak in _leaks(path, names)]
    assert not leaks, "\n".join(leaks[:50])
