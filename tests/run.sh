#!/usr/bin/env bash
# The test command: services up, the package and its test tools installed in .venv, lint, tests.
# Extra arguments go to pytest (for example: bash tests/run.sh -k pipeline).
set -euo pipefail
cd "$(dirname "$0")/.."

bash tests/services.sh
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
.venv/bin/ruff check .
# The slowest tests are listed at the end: the suite should stay near 15 minutes on 2 cores.
exec .venv/bin/python -m pytest -p no:cacheprovider --durations=25 "$@"
