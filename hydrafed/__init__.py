"""hydrafed: federated fine-tuning between organisations.

Each party trains locally, keeps its updates in its own bucket and announces them with a
Cardano transaction inside a shared Hydra head. The packages under ``hydrafed`` are the shared
core (spec models, Hydra layer, update stores, head driver, CLI); ``hydrafed.worker`` trains and
aggregates, ``hydrafed.operator`` runs the whole thing on Kubernetes.
"""

__version__ = "0.1.0"

from hydrafed.hydra import pycardano_slim

# Before any module of ours imports pycardano: it then leaves out its chain clients (28 MiB).
pycardano_slim.install()
