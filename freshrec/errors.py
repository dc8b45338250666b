"""Errors a user can cause. Each carries one sentence that names the cause and the fix."""


class FreshrecError(Exception):
    """An error the user can fix; the CLI prints its message alone, without a traceback."""


class ConfigError(FreshrecError):
    """A setting is missing or invalid."""


class DatabaseError(FreshrecError):
    """The database is unreachable, misconfigured or not migrated."""


class MigrationError(FreshrecError):
    """A migration file is missing, malformed or was edited after it was applied."""


class ModelError(FreshrecError):
    """A model cannot be found, loaded or verified."""


class ConcurrentCycleError(FreshrecError):
    """Another update cycle advanced the ingestion cursor first."""
