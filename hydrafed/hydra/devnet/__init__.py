"""A local Hydra head: N emulated hydra-nodes that speak the hydra-node 2.x API.

``Devnet`` (async) and ``DevnetThread`` (sync wrapper) are the entry points; see
docs/hydra.md for what is emulated and what is not.
"""

from __future__ import annotations

from hydrafed.hydra.devnet.server import Devnet, DevnetThread

__all__ = ["Devnet", "DevnetThread"]
