"""Imported by the fork server, and only there: runs ``processes.preload`` (imports, gc.freeze)."""

from hydrafed.worker import processes

processes.preload()
