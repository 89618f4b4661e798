"""``python -m infra.backup``: back up and restore the application database and the files
patients uploaded (OPS-3).

python -m infra.backup create [--output FILE]          # of CAREPATH_DATABASE_URL
python -m infra.backup restore FILE [--database-url URL] [--uploads-dir DIR]

PostgreSQL: ``pg_dump --format=custom`` (consistent snapshot while the platform runs) and
``pg_restore`` into an empty database, stopping at the first error. SQLite: the online backup API
(a consistent copy while the platform writes), restored by copying the file into place. The
restore target must be empty: a restore never merges with or overwrites live data.

The uploaded photos and signatures (CAREPATH_UPLOAD_DIR) go into FILE.uploads.tar, as stored
(each file sealed under its data key), archived after the database: every file the dump names
was written before it. A restore puts them back into an empty upload directory.

Encrypted columns stay encrypted in the backup; keep the data keys (CAREPATH_DATA_KEYS) with it,
or the restored patient data cannot be read. Temporal's state is not in this database: back up
the Temporal cluster's own store with it (the dev server of ``make run`` keeps var/temporal.db).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import tarfile
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import make_url

from core.settings import get_settings
from infra.toolchain import ToolchainMissing, postgres_tool


class BackupError(RuntimeError):
    pass


def _libpq_uri(database_url: str) -> str:
    """The SQLAlchemy URL as the PostgreSQL tools take it (no driver suffix)."""
    url = make_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def _sqlite_path(database_url: str) -> Path:
    database = make_url(database_url).database
    if not database or database == ":memory:":
        raise BackupError(f"not a SQLite database file: {database_url}")
    return Path(database)


def _split_password(uri: str) -> tuple[str, dict[str, str]]:
    # A password in the URI would show in `ps`; libpq takes it from the environment instead.
    url = make_url(uri)
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
        url = url.set(password=None)
    return url.render_as_string(hide_password=False), env


def default_output(database_url: str, folder: Path) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    suffix = "sqlite3" if database_url.startswith("sqlite") else "dump"
    return folder / f"carepath-{stamp}.{suffix}"


def uploads_archive(backup: Path) -> Path:
    return backup.with_name(backup.name + ".uploads.tar")


def _archive_uploads(uploads_dir: Path, archive: Path) -> None:
    partial = archive.with_name(archive.name + ".partial")
    with tarfile.open(partial, "w") as tar:
        if uploads_dir.is_dir():
            for path in sorted(uploads_dir.rglob("*")):
                # Not a write in progress (a dot-named temporary file, renamed when complete).
                if path.is_file() and not path.name.startswith("."):
                    tar.add(path, arcname=str(path.relative_to(uploads_dir)))
    partial.chmod(0o600)
    partial.rename(archive)


def _restore_uploads(archive: Path, uploads_dir: Path) -> None:
    uploads_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:
        # The "data" filter refuses absolute paths, links out of the directory and devices.
        tar.extractall(uploads_dir, filter="data")


def create_backup(database_url: str, output: Path, uploads_dir: Path | None = None) -> Path:
    """The database to ``output`` and, with ``uploads_dir``, the uploaded files next to it."""
    output.parent.mkdir(parents=True, exist_ok=True)
    if output.exists() or uploads_archive(output).exists():
        raise BackupError(f"{output} exists; a backup never overwrites another")
    partial = output.with_name(output.name + ".partial")
    if database_url.startswith("sqlite"):
        source_path = _sqlite_path(database_url)
        if not source_path.exists():
            raise BackupError(f"no database at {source_path}")
        with sqlite3.connect(source_path) as source, sqlite3.connect(partial) as target:
            source.backup(target)
    else:
        uri, env = _split_password(_libpq_uri(database_url))
        result = subprocess.run(
            [str(postgres_tool("pg_dump")), "--format=custom", f"--file={partial}", uri],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        if result.returncode != 0:
            partial.unlink(missing_ok=True)
            raise BackupError(f"pg_dump failed: {result.stderr.strip()}")
    partial.chmod(0o600)
    if uploads_dir is not None:
        _archive_uploads(uploads_dir, uploads_archive(output))
    # Only a complete backup ever carries the final name.
    partial.rename(output)
    return output


def _sqlite_is_empty(path: Path) -> bool:
    if not path.exists() or path.stat().st_size == 0:
        return True
    with sqlite3.connect(path) as conn:
        tables: int = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    return tables == 0


def restore_backup(backup: Path, database_url: str, uploads_dir: Path | None = None) -> None:
    """The database into an empty one and, with ``uploads_dir``, the uploaded files into an
    empty directory; either target holding data refuses the restore before anything is
    written."""
    if not backup.is_file():
        raise BackupError(f"no backup file at {backup}")
    archive = uploads_archive(backup)
    files_to = uploads_dir if uploads_dir is not None and archive.is_file() else None
    if files_to is not None and files_to.is_dir() and any(p.is_file() for p in files_to.rglob("*")):
        raise BackupError(f"{files_to} already holds files; restore into an empty one")
    _restore_database(backup, database_url)
    if files_to is not None:
        _restore_uploads(archive, files_to)


def _restore_database(backup: Path, database_url: str) -> None:
    if database_url.startswith("sqlite"):
        target = _sqlite_path(database_url)
        if not _sqlite_is_empty(target):
            raise BackupError(f"{target} already holds data; restore into an empty database")
        with sqlite3.connect(backup) as check:
            if check.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
                raise BackupError(f"{backup} is not an intact SQLite database")
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        shutil.copyfile(backup, partial)
        partial.rename(target)
        return
    uri, env = _split_password(_libpq_uri(database_url))
    probe = subprocess.run(
        [
            str(postgres_tool("psql")),
            "--no-psqlrc",
            "--tuples-only",
            "--no-align",
            "--command=SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
            uri,
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if probe.returncode != 0:
        raise BackupError(f"cannot reach the target database: {probe.stderr.strip()}")
    if probe.stdout.strip() != "0":
        raise BackupError("the target database already has tables; restore into an empty one")
    result = subprocess.run(
        [
            str(postgres_tool("pg_restore")),
            "--exit-on-error",
            "--single-transaction",
            "--no-owner",
            "--no-privileges",
            f"--dbname={uri}",
            str(backup),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if result.returncode != 0:
        raise BackupError(f"pg_restore failed: {result.stderr.strip()}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create", help="back up the database to a file")
    create.add_argument("--output", type=Path, help="default: <data dir>/backups/carepath-…")
    create.add_argument("--database-url", help="default: CAREPATH_DATABASE_URL")
    restore = sub.add_parser("restore", help="restore a backup into an empty database")
    restore.add_argument("backup", type=Path)
    restore.add_argument("--database-url", help="default: CAREPATH_DATABASE_URL")
    for command in (create, restore):
        command.add_argument("--uploads-dir", type=Path, help="default: CAREPATH_UPLOAD_DIR")
    args = parser.parse_args()
    settings = get_settings()
    database_url = args.database_url or settings.database_url
    uploads_dir = args.uploads_dir or settings.uploads_path
    try:
        if args.command == "create":
            output = args.output or default_output(database_url, settings.data_dir / "backups")
            print(create_backup(database_url, output, uploads_dir))
        else:
            restore_backup(args.backup, database_url, uploads_dir)
            print(f"restored {args.backup}")
    except (BackupError, ToolchainMissing) as exc:
        print(f"backup: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
