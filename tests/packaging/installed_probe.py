"""Exercises an installed CarePath wheel the way an operator's processes would, and prints what it
found as one JSON object on stdout.

tests/packaging/test_wheel.py runs this file with the scratch environment's interpreter in
isolated mode (``python -I``), from an empty working directory, so nothing here can come from
the checkout: not a module, not a template, not alembic.ini. Not a test module itself.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
from contextlib import closing
from pathlib import Path
from typing import Any, cast

import httpx
from alembic.script import ScriptDirectory
from temporalio.client import Client

import api
import api.main
import core.templates
import messaging.templates
import pathways.library
import prescriptions.rules
import simulators.his.app
import workers.main
from api.container import Container
from core.db import create_engine, session_factory
from core.migrate import alembic_config, upgrade
from core.models import StaffRole
from core.settings import Settings
from infra.seed import seed_demo
from integrations.his import HisClient
from messaging.templates import load_platform_templates
from pathways.library import load_library
from prescriptions.rules import load_rule_book
from simulators.his.app import HisState
from workers.factory import WorkerDeps

MODULES = (
    api,
    api.main,
    workers.main,
    core.templates,
    messaging.templates,
    pathways.library,
    prescriptions.rules,
    simulators.his.app,
)


async def _serve(settings: Settings) -> dict[str, Any]:
    """The API as uvicorn would serve it, minus Temporal (nothing requested here reaches it)."""
    engine = create_engine(settings.database_url)
    sessions = session_factory(engine)
    staff = await seed_demo(sessions)
    admin = next(s.token for s in staff if s.role is StaffRole.ADMIN)
    his = HisClient.create(settings.his_base_url, "probe", settings.his_timeout_seconds)
    container = Container.build(settings, sessions, cast(Client, None), his, engine)
    await container.sync_library()  # what Container.open does at start-up
    app = api.main.create_app(container=container)
    found: dict[str, Any] = {}
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://carepath") as client:
            auth = {"Authorization": f"Bearer {admin}"}
            health = await client.get("/healthz")
            found["healthz"] = [health.status_code, health.json()]
            schema = await client.get("/openapi.json")
            found["openapi_paths"] = sorted(schema.json()["paths"])
            listed = await client.get("/api/pathways", headers=auth)
            found["api_pathways"] = {p["id"]: p["live_version"] for p in listed.json()}
            templates = await client.get("/api/message-templates", headers=auth)
            found["api_message_templates"] = sorted(t["code"] for t in templates.json())
            page = await client.get("/p/not-a-real-link")
            found["patient_page"] = [page.status_code, page.headers["content-type"], page.text]
        deps = WorkerDeps.from_settings(settings, sessions)  # what workers.main builds
        found["worker_channels"] = sorted(deps.channels)
        await deps.close()
    finally:
        await container.close()
    return found


def main() -> None:
    work = Path.cwd()
    database_url = f"sqlite+aiosqlite:///{work / 'carepath.db'}"
    report: dict[str, Any] = {
        "sys_path": sys.path,
        "modules": {m.__name__: m.__file__ for m in MODULES},
    }

    script = ScriptDirectory.from_config(alembic_config(database_url))
    report["migrations_dir"] = script.dir
    report["migration_heads"] = list(script.get_heads())
    report["migration_revisions"] = sorted(r.revision for r in script.walk_revisions())
    upgrade(database_url)
    with closing(sqlite3.connect(work / "carepath.db")) as db:
        rows = db.execute("SELECT version_num FROM alembic_version").fetchall()
    report["database_revision"] = [row[0] for row in rows]

    book = load_rule_book()
    report["herbs"] = len(book.canonical)
    report["herb_pairs"] = len(book.pairs)
    templates = load_platform_templates()
    report["message_templates"] = sorted(templates)
    library = load_library(set(templates))
    report["pathways"] = sorted(library.definitions)
    report["forms"] = sorted(library.forms)
    report["articles"] = sorted(library.articles)
    report["his_seed_patients"] = len(HisState.seeded().patients)

    settings = Settings(database_url=database_url, data_dir=work / "var")
    report.update(asyncio.run(_serve(settings)))
    sys.stdout.write(json.dumps(report, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
