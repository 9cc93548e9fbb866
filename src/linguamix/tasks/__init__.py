"""Tasks as plugins: one module per task, one registry (`base`). Built in: `math` (mCoT-MATH -> MGSM) and
`api` (API-Bank / mAPICall-Bank); more come from other packages through the `linguamix.tasks` entry points.

    from linguamix import tasks
    task = tasks.get("math"); ex = task.render(item); s = task.score(completion, ex.gold, ex.lang)
"""
from __future__ import annotations

from . import api, math
from .base import ENTRY_POINT_GROUP, Loader, Task, cut_at_stop, get, names, register

register(math.TASK)
register(api.TASK)

__all__ = ["ENTRY_POINT_GROUP", "Loader", "Task", "cut_at_stop", "get", "names", "register"]
