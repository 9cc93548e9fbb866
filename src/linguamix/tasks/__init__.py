"""Tasks: how an item becomes a prompt + completion (identically for training and evaluation),
which stop strings end a generation, and which scorer judges it. A plain registry, no discovery."""
from __future__ import annotations

from types import ModuleType

from ..errors import ConfigError
from . import api, math

TASKS: dict[str, ModuleType] = {"math": math, "api": api}


def get(name: str) -> ModuleType:
    try:
        return TASKS[name]
    except KeyError:
        raise ConfigError(f"unknown task '{name}' (known: {', '.join(TASKS)})") from None
