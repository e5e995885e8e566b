#!/usr/bin/env bash
# The project's version: pyproject.toml's, the one source. Images, the chart and the
# Python package are released under it (tests/unit/test_version.py keeps the rest equal).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
sed -n 's/^version = "\(.*\)"/\1/p' "$here/pyproject.toml" | head -n1
