"""Errors that reach the user as one line and a non-zero exit code (the CLI prints `str(err)`)."""


class LinguamixError(Exception):
    """Base class: bad input or a failed stage, explained in one line."""

    exit_code = 1


class ConfigError(LinguamixError):
    """A config file, CLI argument or language/mixture spec is invalid. Message names file and field."""

    exit_code = 2


class DataError(LinguamixError):
    """A data file is malformed, missing or inconsistent. Message names file, line and field."""

    exit_code = 2
