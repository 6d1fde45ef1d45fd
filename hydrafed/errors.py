"""The error hierarchy every hydrafed package raises.

Clients map wire-level failures to these; the operator maps them to kopf's permanent or
temporary errors and the CLI to exit codes (see ``exit_code``).
"""

from __future__ import annotations


class HydrafedError(Exception):
    """Base of every error hydrafed raises on purpose."""

    exit_code = 1


class ConfigError(HydrafedError, ValueError):
    """The user's configuration is wrong; the message names the field and the fix."""

    exit_code = 2


class HeadError(HydrafedError):
    """The Hydra head refused something or is in a state that does not allow it."""

    exit_code = 3


class StorageError(HydrafedError):
    """An update store failed."""

    exit_code = 4


class ObjectNotFoundError(StorageError):
    """The object (or bucket) does not exist."""


class AccessDeniedError(StorageError):
    """The credential does not allow this operation."""


class IntegrityError(StorageError):
    """The bytes do not match the announced sha256 (or size)."""


class UnavailableError(StorageError):
    """The store could not be reached; transient, worth retrying."""


class AggregationError(HydrafedError):
    """Updates cannot be aggregated (mismatched keys, shapes or dtypes)."""

    exit_code = 5
