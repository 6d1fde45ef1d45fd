#!/usr/bin/env bash
# mypy --strict over the whole hydrafed namespace, including worker/.
#
# mypy cannot follow setuptools' package-dir mapping (worker/ -> hydrafed.worker), so this builds a view of the installed layout out of symlinks
# and checks that instead. Error paths point into the view; the file names are the real ones.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
view=${MYPY_VIEW:-$root/.cache/mypy-view}
rm -rf "$view" && mkdir -p "$view/hydrafed"
for entry in "$root"/hydrafed/*; do
  ln -s "$entry" "$view/hydrafed/$(basename "$entry")"
done
ln -s "$root/worker" "$view/hydrafed/worker"
cd "$root"
exec "${MYPY:-$root/.venv/bin/mypy}" --config-file "$root/pyproject.toml" "$view/hydrafed" "$@"
