"""Prefect tasks: thin wrappers that read settings, call one core function, log, and emit artifacts."""
