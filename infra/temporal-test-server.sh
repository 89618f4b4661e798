#!/usr/bin/env bash
# Launches the Temporal Java time-skipping test server from the jars that infra/setup.sh cached.
# The Python SDK starts this script as "<script> <port>" and kills it on shutdown; `exec` makes the
# JVM the process the SDK holds, so that kill reaches it instead of orphaning a java child.
set -euo pipefail
cache="${CAREPATH_CACHE:-$HOME/.cache/carepath}"
lib="$cache/temporal-test-server-${TEMPORAL_TEST_SERVER_VERSION:-1.38.0}/lib"
if [ ! -d "$lib" ]; then
  echo "temporal test server jars missing at $lib; run: make setup" >&2
  exit 1
fi
# A small heap and tiered compilation stopped at C1 make the JVM start faster on 2-core machines.
exec java -Xms64m -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto \
  -cp "$lib/*" io.temporal.testserver.TestServer "$@"
