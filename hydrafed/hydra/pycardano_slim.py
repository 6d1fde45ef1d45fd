"""pycardano without its chain-backend clients, which hydrafed never uses.

``import pycardano`` runs ``from .backend import *``, and ``pycardano.backend`` imports every
chain client it ships: Ogmios v5 and v6 (the ``ogmios`` package and its pydantic models),
Blockfrost (``blockfrost-python``, requests) and the cardano-cli context (the ``docker`` SDK).
hydrafed talks to hydra-nodes over their own API and builds transactions offline, so none of
them is ever called; importing them cost each process that imports pycardano 28 MiB of RSS
(72 -> 44 MiB for ``import pycardano`` alone) and about 1 s of CPU (1.9-2.0 s -> 0.7-1.1 s,
3 runs each on a 2-core AMD EPYC).
``hydrafed simulate``'s parent imports pycardano (the devnet's ledger rules, the head's
funding) on its way to the first round, as does the operator.

``install()`` adds an import hook that answers for ``pycardano.backend`` with a package that
exports what ``backend.base`` defines (``ChainContext``, which pycardano's own modules import)
and nothing else. Its path is the real package's, so ``import pycardano.backend.ogmios_v6``
still works for a caller that wants a client; only the re-exports at ``pycardano``'s top level
(``pycardano.OgmiosV6ChainContext``, ``pycardano.BlockFrostChainContext``, ...) are missing.
Until something imports pycardano, the hook loads nothing.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
from collections.abc import Sequence
from pathlib import Path

BACKEND = "pycardano.backend"


def install() -> bool:
    """Make a later ``import pycardano`` leave its chain clients out; returns whether it will.

    Nothing changes where pycardano is already imported (its clients with it).
    """
    if "pycardano" in sys.modules:
        return False
    if not any(isinstance(finder, _BackendFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _BackendFinder())
    return True


class _BackendFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``pycardano.backend`` in pycardano's folder and loads it as a ``_Backend``."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != BACKEND or not path:
            return None
        folder = Path(path[0]) / "backend"
        if not (folder / "base.py").is_file():
            return None  # another layout: the real package, as it is
        spec = importlib.machinery.ModuleSpec(
            BACKEND, self, origin=str(folder / "__init__.py"), is_package=True
        )
        spec.submodule_search_locations = [str(folder)]
        return spec

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return _Backend(spec.name)

    def exec_module(self, module: types.ModuleType) -> None:
        """Nothing to run: ``backend.base`` is imported when its names are first asked for."""


class _Backend(types.ModuleType):
    """``pycardano.backend`` exporting what ``backend.base`` exports, as the real one does; base
    is imported when pycardano's ``from .backend import *`` asks for ``__all__``, which is when
    the real package imports it."""

    def __getattr__(self, name: str) -> object:
        if name.startswith("__") and name != "__all__":
            raise AttributeError(name)
        base = importlib.import_module(f"{BACKEND}.base")
        try:
            return getattr(base, name)
        except AttributeError:
            raise AttributeError(
                f"module {BACKEND!r} has no attribute {name!r} (hydrafed leaves pycardano's chain "
                f"clients out: import {BACKEND}.<client> for one)"
            ) from None
