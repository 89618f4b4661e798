#!/usr/bin/env bash
# Installs what CarePath needs, idempotently: the Python environment (uv + .venv), the Temporal
# CLI built from source, and, for tests, the Java time-skipping test server, PostgreSQL and
# Chromium. Everything downloaded is cached outside the repository ($CAREPATH_CACHE, default
# ~/.cache/carepath) so a second run only checks and returns.
#
#   infra/setup.sh           what `make run` needs
#   infra/setup.sh test      plus what `make test` needs
#   infra/setup.sh bench     plus the Temporal server and its SQL schema tool (`make bench`)
set -euo pipefail

mode="${1:-run}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${CAREPATH_CACHE:-$HOME/.cache/carepath}"
temporal_cli_version="1.5.1"
# The server the CLI embeds: benchmarks run it as a production-shaped cluster on PostgreSQL.
temporal_server_version="1.29.1"
test_server_version="1.38.0"
mkdir -p "$cache"

say() { printf '[setup] %s\n' "$*" >&2; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

apt_packages=()
want_apt() { apt_packages+=("$@"); }
install_apt() {
  [ ${#apt_packages[@]} -eq 0 ] && return 0
  say "installing Debian packages: ${apt_packages[*]}"
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "need root (or sudo) to install: ${apt_packages[*]}"
    sudo="sudo"
  fi
  # Do not let the postgresql package create and start a system-wide cluster: the test harness
  # runs its own private server.
  if [[ " ${apt_packages[*]} " == *" postgresql "* ]] && [ ! -e /etc/postgresql-common/createcluster.conf ]; then
    $sudo mkdir -p /etc/postgresql-common
    echo "create_main_cluster = false" | $sudo tee /etc/postgresql-common/createcluster.conf >/dev/null
  fi
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${apt_packages[@]}" >/dev/null
}

# --- Python environment -------------------------------------------------------------------
command -v python3 >/dev/null || die "python3 (3.11 or newer) is required"
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "python3 must be 3.11 or newer"
uv="$cache/uv-venv/bin/uv"
if [ ! -x "$uv" ]; then
  say "installing uv into $cache/uv-venv"
  python3 -m venv "$cache/uv-venv"
  "$cache/uv-venv/bin/pip" install --quiet --disable-pip-version-check 'uv>=0.9,<0.14'
fi
say "syncing the Python environment (.venv) from uv.lock"
# Compiled once here: where PYTHONDONTWRITEBYTECODE is set (as on these machines), Python would
# otherwise compile every dependency from source in every process it starts, seconds each time
# for an API or worker process (and Temporal's worker build id compiles them all again).
(cd "$root" && UV_PYTHON_DOWNLOADS=never "$uv" sync --frozen --quiet --python python3 --compile-bytecode)
# The platform's own modules too: Temporal's sandbox imports a workflow's modules afresh for each
# workflow it loads, so without bytecode every cache miss compiled them (a quarter of a busy
# worker's CPU). Only what changed since is compiled again; an edited module still runs as edited.
(cd "$root" && .venv/bin/python -m compileall -q -j0 -x '/(\.venv|node_modules|var)/' . >/dev/null)

# --- Staff workbench front-end assets (ECharts, htmx), from the npm registry ---------------
# Installed into web/node_modules from the lock file and served by the API itself: pages never
# load a script from the internet. Skipped when the installed tree matches the lock.
command -v npm >/dev/null || die "npm (Node.js 18 or newer) is required for the workbench's assets"
stamp="$root/web/node_modules/.carepath-lock-sha256"
want="$(sha256sum "$root/web/package-lock.json" | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "installing the workbench's front-end assets (npm ci)"
  (cd "$root/web" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error >/dev/null)
  echo "$want" > "$stamp"
fi

# --- Temporal CLI (dev server + UI), built from source -----------------------------------
# The SDK's own download of the dev server needs the internet; these machines reach only the
# Go module proxy. Later CLI versions carry a `replace` directive that breaks `go install`.
cli="$cache/temporal-cli-$temporal_cli_version/temporal"
if [ ! -x "$cli" ]; then
  command -v go >/dev/null || die "Go is required to build the Temporal CLI"
  say "building Temporal CLI v$temporal_cli_version with go install (takes a few minutes once)"
  start=$(date +%s)
  mkdir -p "$(dirname "$cli")"
  # The release builds stamp the version; `go install` leaves the source's "0.0.0-DEV" unless told.
  GOBIN="$(dirname "$cli")" GOFLAGS=-mod=mod go install \
    -ldflags "-X github.com/temporalio/cli/temporalcli.Version=$temporal_cli_version" \
    "github.com/temporalio/cli/cmd/temporal@v$temporal_cli_version"
  say "Temporal CLI built in $(( $(date +%s) - start ))s"
fi

if [ "$mode" = "run" ]; then
  say "ready to run"
  exit 0
fi

# --- Test-only system packages ------------------------------------------------------------
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || want_apt postgresql
[ -x /usr/bin/chromium ] || want_apt chromium
# A CJK font, so browser screenshots of the Chinese patient pages are legible.
fc-list :lang=zh 2>/dev/null | grep -q . || want_apt fonts-wqy-zenhei
command -v java >/dev/null || want_apt default-jre-headless
command -v mvn >/dev/null || want_apt maven
install_apt

# --- Temporal Java time-skipping test server (jars from Maven Central) --------------------
lib="$cache/temporal-test-server-$test_server_version/lib"
if ! ls "$lib"/temporal-test-server-*.jar >/dev/null 2>&1; then
  say "fetching io.temporal:temporal-test-server:$test_server_version from Maven Central"
  mvn -q -B -f "$root/infra/test-server/pom.xml" \
    -Dtemporal.version="$test_server_version" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$lib"
fi
if [ "$mode" != "bench" ]; then
  say "ready to test"
  exit 0
fi

# --- Temporal server and its SQL schema tool, built from source (benchmarks only) ---------
# go.temporal.io/server at the version the CLI embeds; the schema files come with its module.
server_dir="$cache/temporal-server-$temporal_server_version"
if [ ! -x "$server_dir/server" ] || [ ! -x "$server_dir/sql" ]; then
  say "building Temporal server v$temporal_server_version and temporal-sql-tool with go install"
  start=$(date +%s)
  mkdir -p "$server_dir"
  GOBIN="$server_dir" GOFLAGS=-mod=mod go install \
    "go.temporal.io/server/cmd/server@v$temporal_server_version" \
    "go.temporal.io/server/cmd/tools/sql@v$temporal_server_version"
  say "Temporal server built in $(( $(date +%s) - start ))s"
fi
# The schema files live in the module cache, which a cache clean may have emptied.
[ -d "$(go env GOMODCACHE)/go.temporal.io/server@v$temporal_server_version/schema" ] || \
  GOFLAGS=-mod=mod go mod download "go.temporal.io/server@v$temporal_server_version"
say "ready to benchmark"
