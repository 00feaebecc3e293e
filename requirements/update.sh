#!/usr/bin/env bash
# Regenerate requirements/constraints.txt: resolve pyproject.toml's ranges in a fresh
# environment and pin what was installed. CI and `make` install with these pins.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-/usr/bin/python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$python" -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install --quiet --upgrade pip
"$tmp/venv/bin/pip" install --quiet -e '.[test]'
"$tmp/venv/bin/pip" freeze --exclude-editable | grep -v '^statbox' > requirements/constraints.txt
echo "pinned $(wc -l < requirements/constraints.txt) packages in requirements/constraints.txt"
