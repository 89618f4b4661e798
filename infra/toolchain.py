"""Where infra/setup.sh caches the binaries that cannot come from PyPI.

The Temporal SDK would otherwise download its dev server and test server at run time, which these
machines cannot do; everything here is built or fetched once by ``make setup`` and reused.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
TEMPORAL_CLI_VERSION = "1.5.1"
TEST_SERVER_VERSION = "1.38.0"
TEMPORAL_SERVER_VERSION = "1.29.1"


class ToolchainMissing(RuntimeError):
    pass


def cache_dir() -> Path:
    return Path(os.environ.get("CAREPATH_CACHE", Path.home() / ".cache" / "carepath"))


def temporal_cli() -> Path:
    path = cache_dir() / f"temporal-cli-{TEMPORAL_CLI_VERSION}" / "temporal"
    if not os.access(path, os.X_OK):
        raise ToolchainMissing(f"Temporal CLI not found at {path}; run `make setup` first")
    return path


def test_server_script() -> Path:
    lib = cache_dir() / f"temporal-test-server-{TEST_SERVER_VERSION}" / "lib"
    if not any(lib.glob("temporal-test-server-*.jar")):
        raise ToolchainMissing(f"Temporal test server jars not found in {lib}; run `make setup`")
    return REPO_ROOT / "infra" / "temporal-test-server.sh"


def temporal_server() -> tuple[Path, Path, Path]:
    """The Temporal server, its SQL schema tool, and the PostgreSQL schema folder (v12) from its
    module, as ``make setup-bench`` builds them."""
    folder = cache_dir() / f"temporal-server-{TEMPORAL_SERVER_VERSION}"
    server, tool = folder / "server", folder / "sql"
    modules = subprocess.run(
        ["go", "env", "GOMODCACHE"], capture_output=True, text=True, check=False
    ).stdout.strip()
    schema = (
        Path(modules) / f"go.temporal.io/server@v{TEMPORAL_SERVER_VERSION}/schema/postgresql/v12"
    )
    if not (os.access(server, os.X_OK) and os.access(tool, os.X_OK) and schema.is_dir()):
        raise ToolchainMissing(
            f"Temporal server {TEMPORAL_SERVER_VERSION} not built; run `make setup-bench`"
        )
    return server, tool, schema


def postgres_tool(name: str) -> Path:
    """A PostgreSQL program (pg_dump, initdb, ...): CAREPATH_PG_BIN, the newest Debian server
    package, then PATH (a client-only install)."""
    configured = os.environ.get("CAREPATH_PG_BIN")
    folders = [Path(configured)] if configured else []
    folders += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for folder in folders:
        if os.access(folder / name, os.X_OK):
            return folder / name
    found = shutil.which(name)
    if found is None:
        raise ToolchainMissing(
            f"PostgreSQL's {name} not found; `make setup-test` installs the Debian package"
        )
    return Path(found)
