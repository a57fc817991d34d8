#!/usr/bin/env bash
# The test command: services up, the package and its test tools installed in .venv, lint, tests.
# Extra arguments go to pytest (for example: bash tests/run.sh -k pipeline).
set -euo pipefail
cd "$(dirname "$0")/.."

bash tests/services.sh
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
.venv/bin/ruff check .
# Two pytest-xdist workers (CROSSPOST_TEST_WORKERS; "-n 0" among the arguments runs in one process):
# much of a test's time is spent waiting on worker processes, servers and the databases, so two
# workers pay even on 2 cores. loadgroup keeps the tests marked xdist_group on one worker (the Bluesky
# peer's network starts once). The slowest tests are listed at the end: the suite should stay near
# 15 minutes on 2 cores.
exec .venv/bin/python -m pytest -p no:cacheprovider -n "${CROSSPOST_TEST_WORKERS:-2}" --dist loadgroup \
  --durations=25 "$@"
