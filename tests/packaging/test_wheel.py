"""The wheel built from pyproject.toml carries everything the platform needs at run time.

The wheel is built from this checkout, installed with its locked runtime dependencies (no dev
group) into a scratch environment, and exercised from an empty directory in isolated mode, so a
module, template or migration that only the checkout has fails here. Nothing is downloaded:
the build backend and the dependencies come from uv's cache, which ``uv sync`` (infra/setup.sh)
filled when it built this checkout's .venv, and every uv call runs with --offline.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.toolchain import cache_dir

REPO_ROOT = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).with_name("installed_probe.py")
PACKAGES = (
    "core",
    "contracts",
    "api",
    "workflows",
    "activities",
    "pathways",
    "prescriptions",
    "complaints",
    "exams",
    "nursing",
    "workers",
    "simulators",
    "infra",
    "messaging",
    "integrations",
    "services",
)
# Data the code reads from beside its modules; each pattern must match the same files in the
# checkout and in the wheel.
DATA = (
    "templates/messages/*.yaml",
    "templates/pages/*.html",
    "templates/pages/*.js",
    "pathways/library/*.yaml",
    "pathways/forms/*.yaml",
    "pathways/articles/*.yaml",
    "prescriptions/data/*.yaml",
    "exams/*.yaml",
    "simulators/his/seed.yaml",
    "infra/migrations/env.py",
    "infra/migrations/script.py.mako",
    "infra/migrations/versions/*.py",
)
TIMEOUT = 120


def _uv() -> str:
    """The uv that infra/setup.sh installs, else one on PATH."""
    installed = cache_dir() / "uv-venv" / "bin" / "uv"
    found = str(installed) if os.access(installed, os.X_OK) else shutil.which("uv")
    if found is None:
        pytest.fail(f"uv not found at {installed} or on PATH; run `make setup`")
    return found


def _env(**extra: str) -> dict[str, str]:
    """The caller's environment without what points at the checkout, its .venv or its settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CAREPATH_", "PYTHON", "UV_PROJECT", "UV_PYTHON", "UV_INDEX"))
        and k not in {"VIRTUAL_ENV", "CONDA_PREFIX"}
    }
    return {
        **env,
        "UV_OFFLINE": "1",
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_NO_PROGRESS": "1",
        **extra,
    }


OFFLINE_HINT = "uv runs offline here: it needs the cache that `uv sync` (make setup) filled"


def _run(argv: list[str], cwd: Path, env: dict[str, str], hint: str = OFFLINE_HINT) -> str:
    done = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    if done.returncode != 0:
        pytest.fail(
            f"{' '.join(argv)} exited {done.returncode} ({hint})\n"
            f"--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
        )
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    _run(
        [_uv(), "build", "--wheel", "--offline", "--out-dir", str(out), str(REPO_ROOT)],
        cwd=out,
        env=_env(),
    )
    (built,) = out.glob("carepath-*.whl")
    return built


@pytest.fixture(scope="module")
def scratch(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtual environment holding the wheel and the locked runtime dependencies only."""
    venv = tmp_path_factory.mktemp("scratch") / "venv"
    uv, env = _uv(), _env(UV_PROJECT_ENVIRONMENT=str(venv))
    cwd = venv.parent
    # The lock's runtime dependencies, from the cache, into the scratch environment.
    _run(
        [
            uv,
            "sync",
            "--project",
            str(REPO_ROOT),
            "--frozen",
            "--offline",
            "--no-dev",
            "--no-install-project",
            "--python",
            sys.executable,
        ],
        cwd=cwd,
        env=env,
    )
    python = venv / "bin" / "python"
    _run(
        [uv, "pip", "install", "--offline", "--no-deps", "--python", str(python), str(wheel)],
        cwd=cwd,
        env=env,
    )
    # The wheel's own requirements are met by what the lock installed.
    _run([uv, "pip", "check", "--python", str(python)], cwd=cwd, env=env)
    return venv


@pytest.fixture(scope="module")
def probe(scratch: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("probe-cwd")
    argv = [str(scratch / "bin" / "python"), "-I", str(PROBE)]
    out = _run(argv, cwd=work, env=_env(), hint="the installed wheel does not work on its own")
    report: dict[str, Any] = json.loads(out.splitlines()[-1])
    report["site_packages"] = _site_packages(scratch)
    return report


def _site_packages(venv: Path) -> str:
    purelib = sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)})
    return str(Path(purelib).resolve())


def _inside(path: str, folder: str | Path) -> bool:
    return Path(path).resolve().is_relative_to(Path(folder).resolve())


def test_wheel_holds_the_packages_and_their_data_and_nothing_else(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    top_level = {name.split("/", 1)[0] for name in names if not name.startswith("carepath-")}
    assert top_level == {*PACKAGES, "templates"}

    missing_modules = sorted(
        str(path.relative_to(REPO_ROOT))
        for package in PACKAGES
        for path in (REPO_ROOT / package).rglob("*.py")
        if "__pycache__" not in path.parts and str(path.relative_to(REPO_ROOT)) not in names
    )
    assert missing_modules == []
    for pattern in DATA:
        in_checkout = {str(p.relative_to(REPO_ROOT)) for p in REPO_ROOT.glob(pattern)}
        assert in_checkout, pattern
        assert in_checkout <= names, f"{pattern}: missing {sorted(in_checkout - names)}"
    assert not any(name.endswith((".pyc", ".db", ".pem")) for name in names)


def test_installed_wheel_runs_without_the_checkout(probe: dict[str, Any]) -> None:
    site = probe["site_packages"]
    for module, file in probe["modules"].items():
        assert _inside(file, site), f"{module} imported from {file}, not the installed wheel"
    assert not any(_inside(entry, REPO_ROOT) for entry in probe["sys_path"] if entry)


def test_installed_wheel_migrates_a_database(probe: dict[str, Any]) -> None:
    shipped = sorted(
        p.stem.split("_", 1)[0] for p in REPO_ROOT.glob("infra/migrations/versions/*.py")
    )
    assert _inside(probe["migrations_dir"], probe["site_packages"])
    assert probe["migration_revisions"] == shipped
    assert probe["database_revision"] == probe["migration_heads"] == [shipped[-1]]


def test_installed_wheel_loads_the_library_templates_and_rule_book(probe: dict[str, Any]) -> None:
    def ids(pattern: str, key: str) -> list[str]:
        files = REPO_ROOT.glob(pattern)
        return sorted(yaml.safe_load(p.read_text(encoding="utf-8"))[key] for p in files)

    assert probe["pathways"] == ids("pathways/library/*.yaml", "id")
    assert probe["forms"] == ids("pathways/forms/*.yaml", "id")
    assert probe["articles"] == ids("pathways/articles/*.yaml", "id")
    assert probe["message_templates"] == ids("templates/messages/*.yaml", "code")
    assert probe["herbs"] > 100
    assert probe["herb_pairs"] > 0
    assert probe["his_seed_patients"] > 0


def test_installed_wheel_serves_the_api(probe: dict[str, Any]) -> None:
    assert probe["healthz"] == [200, {"status": "ok"}]
    assert {"/healthz", "/readyz", "/api/pathways", "/api/message-templates"} <= set(
        probe["openapi_paths"]
    )
    # The shipped library was published at start-up and is live.
    assert sorted(probe["api_pathways"]) == probe["pathways"]
    assert all(version == 1 for version in probe["api_pathways"].values())
    assert probe["api_message_templates"] == probe["message_templates"]
    # A patient page is rendered from the installed page templates.
    status, content_type, html = probe["patient_page"]
    assert status == 404
    assert content_type.startswith("text/html")
    assert "链接无效" in html
    assert "</html>" in html
    assert probe["worker_channels"]
