"""What a task is, and the registry of tasks.

A task is one module that defines one object satisfying `Task`: how an item becomes a prompt and a
completion (the same for training and evaluation), where a generation stops, how a completion is scored
against the gold answer, and which data formats feed it. Everything else in linguamix — the config's
validation, the CLI's choices, data build, training, evaluation, `linguamix score` — asks the registry.

A task can live in another package: expose it under the entry-point group `linguamix.tasks`
(`[project.entry-points."linguamix.tasks"] mytask = "mypkg.mytask:TASK"`), or call `register(TASK)`.
"""
from __future__ import annotations

from importlib import metadata
from typing import Any, Callable, Iterable, Mapping, Protocol, Sequence, runtime_checkable

from ..errors import ConfigError
from ..records import Example, ItemScore

ENTRY_POINT_GROUP = "linguamix.tasks"

Loader = Callable[..., Any]
"""`loader(src, langs, options) -> {lang: [item, ...]}` (see `linguamix.data.loaders`)."""


@runtime_checkable
class Task(Protocol):
    name: str
    """Registry key; the config's `tasks.<name>` and the CLI's `--task`."""
    stop: tuple[str, ...]
    """Stop strings: every generation backend stops there and the scorer cuts there."""
    formats: tuple[str, ...]
    """Data formats whose items this task renders (`SourceConfig.format`); built-in formats are loaded by
    `linguamix.data.loaders`, others by this task's own `loaders`."""
    loaders: Mapping[str, Loader]
    """Loaders this task brings for formats linguamix does not know ({} for the built-in tasks)."""
    modes: tuple[str, ...]
    """Scoring modes; the first is the default."""
    gold: str
    """What a gold answer is, in words (for error messages and `linguamix score --help`)."""

    def render(self, item: Any) -> Example:
        """An item of one language -> the prompt and completion the model sees (training and evaluation)."""

    def parse_gold(self, gold: Any) -> Any:
        """A gold answer as stored in data files or prediction rows, validated; ValueError if unusable."""

    def score(self, completion: str, gold: Any, lang: str, *, mode: str = "default") -> ItemScore:
        """One completion against its gold answer (cut at `stop` first)."""

    def summary_counts(self, details: Sequence[Mapping[str, Any]]) -> dict[str, int]:
        """Task-specific counts for a per-language summary, from the scores' `detail`s ({} if none)."""


def cut_at_stop(text: str, stops: Iterable[str] | None) -> str:
    """`text` up to (not including) the earliest occurrence of any stop string (None or () keeps it whole).

    vLLM drops the stop string, HF `generate(stop_strings=...)` keeps it and may run past it in a batch;
    both backends pass their raw text through this so that the scored strings are identical.
    """
    if isinstance(stops, str):  # a lone string is one stop string, not a set of characters
        stops = (stops,)
    cut = len(text)
    for stop in stops or ():
        if stop:
            i = text.find(stop, 0, cut + len(stop))  # nothing after the earliest cut so far can matter
            if 0 <= i < cut:
                cut = i
    return text[:cut]


_REGISTRY: dict[str, Task] = {}
_discovered = False


def register(task: Task) -> Task:
    """Add a task; registering a second, different task under a taken name is an error."""
    missing = [a for a in ("name", "stop", "formats", "loaders", "modes", "gold", "render", "parse_gold", "score",
                           "summary_counts") if not hasattr(task, a)]
    if missing:
        raise ConfigError(f"task {getattr(task, 'name', task)!r} does not define {', '.join(missing)} "
                          "(see linguamix.tasks.Task)")
    old = _REGISTRY.get(task.name)
    if old is not None and old is not task:
        raise ConfigError(f"task '{task.name}' is already registered (by {type(old).__module__})")
    _REGISTRY[task.name] = task
    return task


def _discover() -> None:
    """Load the tasks other packages declare under the `linguamix.tasks` entry-point group (once)."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            task = ep.load()
        except Exception as e:  # a broken plugin must say which one it is
            raise ConfigError(f"task plugin '{ep.name}' ({ep.value}) cannot be loaded: {type(e).__name__}: {e}") from None
        if task.name not in _REGISTRY or _REGISTRY[task.name] is not task:
            register(task)


def get(name: str) -> Task:
    if name not in _REGISTRY:
        _discover()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown task '{name}' (known: {', '.join(names())})") from None


def names() -> list[str]:
    _discover()
    return list(_REGISTRY)
