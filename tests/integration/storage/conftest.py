"""SeaweedFS for the storage tests (the fixture lives in tests/fixtures/seaweedfs.py)."""

from tests.fixtures.seaweedfs import seaweedfs

__all__ = ["seaweedfs"]
