"""Errors that reach the user as one line and a non-zero exit code (the CLI prints `str(err)`), and the
exit codes every process of linguamix uses (the orchestrator reads them back from its jobs)."""

EXIT_OK = 0
EXIT_FAILED = 1
"""A stage failed (a crash, a model that cannot be loaded): worth a retry."""
EXIT_CONFIG = 2
"""Bad input (config, data file, CLI argument): deterministic, never retried."""
EXIT_PREEMPTED = 75
"""EX_TEMPFAIL: stopped by a signal after saving a checkpoint; run the same command again to resume."""
EXIT_INTERRUPTED = 130
"""Ctrl-C (128 + SIGINT), as shells report it."""


class LinguamixError(Exception):
    """Base class: bad input or a failed stage, explained in one line."""

    exit_code = EXIT_FAILED


class ConfigError(LinguamixError):
    """A config file, CLI argument or language/mixture spec is invalid. Message names file and field."""

    exit_code = EXIT_CONFIG


class DataError(LinguamixError):
    """A data file is malformed, missing or inconsistent. Message names file, line and field."""

    exit_code = EXIT_CONFIG


class StorageError(LinguamixError):
    """An output cannot be written (disk full, read-only, a directory where a file goes). Nothing was left
    half-written: the target is unchanged or complete."""

    exit_code = EXIT_CONFIG
