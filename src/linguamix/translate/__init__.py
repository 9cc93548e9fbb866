"""mAPICall-Bank builder: translate API-Bank (or any JSONL dataset) into other languages with an LLM.

    config.py    the translate config (engine, validation, prompt version, sources)
    prompt.py    the versioned prompts
    units.py     source files -> translation units (JSON views) -> rebuilt files
    engine.py    an OpenAI-compatible endpoint: retries, rate limit, the key kept secret
    cache.py     one file per finished unit: reruns request nothing twice
    validate.py  structural and language checks of one translated unit
    outputs.py   the per-language folders, rejects and manifest
    run.py       `translate()`: plan -> cached or requested units -> outputs
"""
from __future__ import annotations

from .cache import Cache, cache_key
from .config import EngineConfig, TranslateConfig, ValidationConfig, load_translate_config
from .engine import Engine, EngineError, EngineFatal
from .outputs import summary_rows
from .prompt import PROMPT_VERSION, PROMPTS, Prompt
from .run import translate, translate_unit
from .units import Unit, rebuild_dialogue, rebuild_training_row, response_schema, training_view

__all__ = ["PROMPT_VERSION", "PROMPTS", "Prompt", "TranslateConfig", "EngineConfig", "ValidationConfig",
           "load_translate_config", "translate", "translate_unit", "Engine", "EngineError", "EngineFatal", "Cache",
           "cache_key", "Unit", "training_view", "rebuild_training_row", "rebuild_dialogue", "response_schema",
           "summary_rows"]
