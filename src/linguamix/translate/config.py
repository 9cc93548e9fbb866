"""`linguamix translate`'s config: the engine, the validation thresholds, the prompt version, the sources."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from .. import languages
from ..errors import ConfigError
from . import validate as V
from .prompt import PROMPTS


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class EngineConfig(_Strict):
    base_url: str
    """OpenAI-compatible endpoint, e.g. http://localhost:8000/v1 (`vllm serve`)."""
    model: str
    """Model name as the server knows it."""
    api_key_env: str | None = "OPENAI_API_KEY"
    """Name of the environment variable holding the API key (None: send no key, e.g. a local vLLM)."""
    temperature: float = Field(default=0.0, ge=0)
    max_tokens: int = Field(default=4096, ge=16)
    timeout_s: float = Field(default=120.0, gt=0)
    max_concurrency: int = Field(default=8, ge=1)
    requests_per_minute: float | None = Field(default=None, gt=0)
    """None: no rate limit (only `max_concurrency`)."""
    max_retries: int = Field(default=5, ge=0)
    """HTTP retries per request on 429, 5xx, time-outs and connection errors."""
    backoff_base_s: float = Field(default=1.0, ge=0)
    backoff_max_s: float = Field(default=60.0, ge=0)
    structured_output: Literal["off", "json_object", "json_schema", "vllm"] = "off"
    """`json_object`/`json_schema`: OpenAI `response_format`; `vllm`: vLLM's `structured_outputs` extra
    body with a JSON schema derived from each example (API names, roles and identifier values fixed)."""
    extra_body: dict[str, Any] = Field(default_factory=dict)
    """Merged into every request (e.g. {chat_template_kwargs: {enable_thinking: false}})."""
    trust_env: bool = True
    """Let httpx read proxy settings from the environment."""


class LanguageChecks(_Strict):
    """Per-language overrides of the language-check thresholds."""

    min_script_share: float | None = Field(default=None, ge=0, le=1)
    lid_min_score: float | None = Field(default=None, ge=0, le=1)
    lid_confident: float | None = Field(default=None, ge=0, le=1)
    lid_min_letters: int | None = Field(default=None, ge=0)


class ValidationConfig(_Strict):
    max_attempts: int = Field(default=3, ge=1)
    """Tries per example (the first plus retries with the validation error fed back)."""
    min_script_share: float = Field(default=0.5, ge=0, le=1)
    lid_min_score: float = Field(default=0.1, ge=0, le=1)
    lid_confident: float = Field(default=0.5, ge=0, le=1)
    lid_min_letters: int = Field(default=15, ge=0)
    untranslated_min_letters: int = Field(default=12, ge=1)
    preserve_numbers: bool = False
    """Generic JSONL mode: every field keeps its digits (turn on for math problems)."""
    per_language: dict[str, LanguageChecks] = Field(default_factory=dict)

    def settings(self, lang: str, source_lang: str) -> V.Settings:
        over = self.per_language.get(lang, LanguageChecks()).model_dump(exclude_none=True)
        base = {k: getattr(self, k) for k in ("min_script_share", "lid_min_score", "lid_confident",
                                              "lid_min_letters", "untranslated_min_letters", "preserve_numbers")}
        return V.Settings(source_lang=source_lang, **{**base, **over})


class TranslateConfig(_Strict):
    engine: EngineConfig
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    prompt_version: str | None = None
    """Default: `mapicall-v1` for API-Bank, `fields-v1` for generic JSONL."""
    source_lang: str = "en"
    source_dir: str | None = None
    """Default source folder/file (relative to the config); `--source-dir` overrides it."""
    include: list[str] | None = None
    """Source files to translate, as globs relative to the source folder (`--files` overrides)."""
    fields: list[str] | None = None
    """Generic JSONL mode: the string fields to translate (`--fields` overrides)."""
    cache_dir: str | None = None
    """Default DIR/.cache/translate; share one between output folders to reuse translations."""
    languages_extra: str | None = None
    """YAML file with more languages (layout of linguamix/languages.yaml), relative to the config."""
    base_dir: str = "."
    _extra_languages: tuple = PrivateAttr(default=())

    def language_scope(self):
        """The language table with `languages_extra`, for the duration of a `with` block."""
        return languages.extended(self._extra_languages)

    def path(self, p: str) -> Path:
        """A path from the config, relative to the config file's folder."""
        q = Path(p).expanduser()
        return q if q.is_absolute() else Path(self.base_dir) / q


def load_translate_config(path: str | Path) -> TranslateConfig:
    from ..config import _format_validation_error

    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config ({e.strerror})") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    if "base_dir" in doc:
        raise ConfigError(f"{path}: field 'base_dir': set by linguamix, not in the file")
    try:
        cfg = TranslateConfig.model_validate({**doc, "base_dir": str(path.parent.resolve())})
    except ValidationError as e:
        raise ConfigError(_format_validation_error(str(path), e)) from None
    if cfg.languages_extra:
        try:
            cfg._extra_languages = tuple(languages.load_yaml(cfg.path(cfg.languages_extra)))
        except ConfigError as e:
            raise ConfigError(f"{path}: field 'languages_extra': {e}") from None
    if cfg.prompt_version is not None and cfg.prompt_version not in PROMPTS:
        raise ConfigError(f"{path}: field 'prompt_version': unknown version {cfg.prompt_version!r} "
                          f"(known: {', '.join(PROMPTS)})")
    with cfg.language_scope():
        for code in [cfg.source_lang, *cfg.validation.per_language]:
            if not languages.is_known(code):
                raise ConfigError(f"{path}: unknown language code '{code}' (add it with 'languages_extra')")
    return cfg
