"""The real servers the storage tests use: SeaweedFS (S3) and a local Storj network.

The fixtures live in tests/fixtures/seaweedfs.py and tests/fixtures/storj.py.
"""

from tests.fixtures.seaweedfs import seaweedfs
from tests.fixtures.storj import storj_network

__all__ = ["seaweedfs", "storj_network"]
