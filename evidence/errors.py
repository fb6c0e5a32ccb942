"""Domain exceptions.

Library code raises these (converting library errors with ``raise ... from e``);
the CLI and the app turn them into one-line messages at the edges.
"""

from __future__ import annotations


class SubstantiateError(Exception):
    """Base class for every error the project raises on purpose."""


class ConfigError(SubstantiateError, ValueError):
    """A setting is missing or malformed (for example a bad DATABASE_URL)."""


class InputError(SubstantiateError, ValueError):
    """An input document cannot be read: missing, empty, undecodable or unsupported."""


class FetchError(SubstantiateError, OSError):
    """A remote resource (article URL) could not be fetched."""


class NotFound(SubstantiateError, LookupError):
    """A requested row does not exist."""


class PermissionDenied(SubstantiateError, PermissionError):
    """The acting user's role does not allow this write."""


class StaleWrite(SubstantiateError, RuntimeError):
    """The row changed since it was read; the write was refused (optimistic concurrency)."""

    def __init__(self, message: str, *, current: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.current = current or {}


class AuditChainBroken(SubstantiateError, RuntimeError):
    """The audit trail's hash chain does not verify."""


class NCBIError(SubstantiateError, RuntimeError):
    """NCBI E-utilities answered with an error, or could not be reached in bounded time."""


class NCBIUnavailable(NCBIError):
    """NCBI could not be reached (network fault, timeouts, repeated 5xx/429)."""


class ParseError(SubstantiateError, ValueError):
    """An XML document is malformed, truncated, or hostile (entities, DTD tricks)."""


class DatabaseBusy(SubstantiateError, TimeoutError):
    """Another writer held the database's write lock for longer than ``DB_LOCK_WAIT``."""


class EmbeddingStoreError(SubstantiateError, OSError):
    """A file of the embedding store is corrupt, truncated or of another format."""
