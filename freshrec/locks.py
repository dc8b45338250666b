"""PostgreSQL advisory-lock keys, one per kind of exclusive work (64-bit, 'fres' in the high bits)."""

_BASE = 0x66726573 << 32

MIGRATION_LOCK = _BASE | 1
CYCLE_LOCK_NAMESPACE = 0x66726573  # two-key form: (namespace, hashtext(consumer))
