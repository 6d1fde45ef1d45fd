#!/usr/bin/env bash
# mypy --strict over the hydrafed package (the operator and the worker included: both live in it).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
exec "${MYPY:-$root/.venv/bin/mypy}" --config-file "$root/pyproject.toml" "$root/hydrafed" "$@"
