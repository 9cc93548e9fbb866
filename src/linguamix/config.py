"""The study config: YAML -> validated, typed, frozen config.

Every field has a default taken from the paper (section 3.4) unless noted; a typo in a field name,
a wrong type or an unknown language code fails with one line naming the file and the field.
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator, Literal

import yaml
from pydantic import (AliasChoices, BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator,
                      model_validator)

from . import languages, mixtures, tasks
from .errors import ConfigError


class Strict(BaseModel):
    # attribute docstrings become field descriptions: the CLI's --help is written from them
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True, allow_inf_nan=False)


class LanguagesConfig(Strict):
    extra: str | None = None
    """YAML file with more languages (same layout as linguamix/languages.yaml), relative to the config."""


class ModelConfig(Strict):
    id: str
    """Hugging Face hub id or local path of the *base* (pretraining-stage) checkpoint."""
    name: str | None = None
    """Short name used in run names; defaults to the last path component, lower-cased."""
    family: str
    """Model family (`qwen3`, `gemma3`, ...); used by the analysis and for family-specific loading."""
    size_b: float = Field(gt=0)
    """Parameters in billions (the analysis regresses on log10 of this)."""
    revision: str | None = None
    trust_remote_code: bool = False
    attn_implementation: str | None = None
    """None = linguamix's choice (varlen/flex fast path on GPU, SDPA on CPU)."""
    build: Literal["tiny", "tiny-quick"] | None = None
    """`tiny`: if `id` is a folder that does not exist yet, make linguamix's tiny base model there
    (tokenizer + Qwen3-architecture model pretrained on the synthetic corpus; offline, CPU);
    `tiny-quick`: the same with a shorter pretraining."""
    build_options: dict[str, Any] = Field(default_factory=dict)
    """With `build`: fields of `linguamix.tinymodel.TinySettings` to change (e.g. `{steps: 1200, hidden: 256}`)."""

    @property
    def short_name(self) -> str:
        return self.name or Path(self.id.rstrip("/")).name.lower()

    def path(self, base_dir: str | Path = ".") -> str:
        """What to load: the local folder (relative paths: to `base_dir`) if it exists, else the hub id.
        Never builds anything: a `build:` model must have been made first (`linguamix model build`)."""
        local = Path(self.id).expanduser()
        if not local.is_absolute():
            local = Path(base_dir) / local
        if self.build and not local.exists():
            raise ConfigError(f"model '{self.short_name}' (build: {self.build}) is not built yet at {local}: "
                              f"run `linguamix model build CONFIG` (study run, data build and the demo do it first)")
        return str(local) if local.exists() else self.id


class SampleConfig(Strict):
    source: str
    """A local file or folder standing in for a training source that is not on this machine."""
    format: str
    """Its loader (any format of the task, e.g. `mcot-outputs` for mCoT-MATH's style)."""
    options: dict[str, Any] = Field(default_factory=dict)
    languages: list[str] | None = None
    """The languages it holds (default: every training language of the study)."""


class SourceConfig(Strict):
    source: str
    """Hugging Face dataset id, or a local file/directory (relative paths: to the config file)."""
    format: str = "auto"
    """Loader: `mgsm`, `mcot`, `msvamp`, `mcot-outputs`, `api-bank`, `mapicall-bank`, `synthetic-math`,
    `synthetic-api`, or `auto`."""
    options: dict[str, Any] = Field(default_factory=dict)
    """Loader-specific options (e.g. `{split: test}` or per-language file patterns)."""
    sample: SampleConfig | None = None
    """When `source` is not on this machine (a hub dataset offline): a local sample in the same style, from
    which `linguamix plan` estimates the training tokens (labelled as an estimate). Never trained on."""


class ExpectedCounts(Strict):
    """Counts the data should have (e.g. the paper's); `data stats` warns when the loaded data differ."""

    train: int | None = Field(default=None, ge=1)
    """Parallel items in the training pool per language (train + validation, before the length filter)."""
    train_apis: int | None = Field(default=None, ge=1)
    """Distinct gold APIs in the training pool (API task)."""
    test: int | None = Field(default=None, ge=1)
    """Test items per language."""
    test_apis: int | None = Field(default=None, ge=1)
    """Distinct gold APIs in the test set (API task)."""


class TaskConfig(Strict):
    train: SourceConfig
    """Parallel training pool (train and validation items are both drawn from it, split by item id)."""
    test: SourceConfig
    """Parallel test set, evaluated on every evaluation language."""
    train_per_lang: int | None = Field(default=None, ge=1)
    """Training items per language (the same items in every language); None = all that remain."""
    val_per_lang: int = Field(default=200, ge=1)
    """Validation items per language, held out by item id."""
    max_length: int = Field(default=2048, ge=16)
    """Token limit for prompt + completion; items longer in ANY language are dropped in all languages."""
    max_new_tokens: int = Field(default=512, ge=1)
    """Generation budget at validation and test time."""
    expected: ExpectedCounts = Field(default_factory=ExpectedCounts)
    """Counts to check the loaded data against (`data stats` warns on a difference)."""


def _default_tasks() -> dict[str, TaskConfig]:
    return {
        "math": TaskConfig(
            train=SourceConfig(source="laihuiyuan/mCoT-MATH", format="mcot"),
            test=SourceConfig(source="juletxara/mgsm", format="mgsm"),
            train_per_lang=10_000, val_per_lang=200, max_new_tokens=512),
        "api": TaskConfig(
            train=SourceConfig(source="mapicall-bank", format="mapicall-bank", options={"split": "train"}),
            test=SourceConfig(source="mapicall-bank", format="mapicall-bank", options={"split": "test"}),
            train_per_lang=None, val_per_lang=150, max_new_tokens=128),
    }


class LoraConfig(Strict):
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] | str = "all-linear"


class TrainConfig(Strict):
    learning_rate: float = Field(default=1e-5, gt=0)
    lr_scheduler: str = "cosine"
    warmup_ratio: float = Field(default=0.03, ge=0, lt=1)
    weight_decay: float = Field(default=0.01, ge=0)
    optimizer: str = "adamw_torch"
    epochs: int = Field(default=6, ge=1)
    global_batch_size: int = Field(default=512, ge=1)
    """Examples per optimizer step, over all devices (micro-batch x accumulation x world size)."""
    micro_batch_size: int | None = Field(default=None, ge=1)
    """Examples per device per forward; None = the largest divisor of the per-device batch that fits."""
    max_tokens_per_micro_batch: int | None = Field(default=None, ge=1)
    """Token budget of a padding-free micro-batch (fast path); None = decided from model size and memory."""
    gradient_checkpointing: bool | Literal["auto"] = True
    """The paper enables it; `auto` turns it on only when memory requires it."""
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    """`auto` = bf16 mixed precision on GPU, fp32 on CPU. fp16 is not offered (it overflows on Gemma-3)."""
    padding_free: bool = True
    """Flatten micro-batches without padding; attention stays inside each example (no packing)."""
    fast_path: bool = True
    """Varlen attention + fused linear cross-entropy where available (falls back with a notice)."""
    lora: LoraConfig | None = None
    """None = full fine-tuning, as in the paper."""
    select_every_epoch: bool = True
    """Generate on the validation set of every mixture language after each epoch and keep the best."""
    max_steps: int | None = Field(default=None, ge=1)
    """Stop after this many optimizer steps (smoke tests / benchmarks only)."""
    logging_steps: int = Field(default=10, ge=1)
    accelerate_config: str | None = None
    """An `accelerate` config (ddp, fsdp2, zero3 shipped in configs/accelerate/) for multi-GPU runs."""
    report_to: list[Literal["tensorboard", "wandb"]] = Field(default_factory=list)
    """Where the trainer also logs loss, learning rate, tokens/s, MFU and each epoch's validation accuracy
    per language: TensorBoard event files under the run's `logs/tensorboard/`, and/or Weights & Biases
    (online or offline as WANDB_MODE says; WANDB_PROJECT names the project). Not part of a run's hash."""


class EvalConfig(Strict):
    languages: list[str] = Field(default_factory=lambda: ["en", "es", "ja", "bn", "sw", "te"])
    backend: Literal["hf", "vllm"] = "hf"
    """Who generates, for test evaluation and for the epoch-end validation (vllm: in a child process; see
    docs/evaluation.md, "Epoch-end validation through vLLM")."""
    batch_size: int = Field(default=32, ge=1)
    validation_limit: int | None = Field(default=None, ge=1)
    """Use only the first N validation items per language for checkpoint selection (None = all)."""


class SlurmConfig(Strict):
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    gpus_per_node: int = Field(default=8, ge=0)
    """GPUs per node of a job that trains over several GPUs; 0 = CPU-only jobs (no GPU is requested)."""
    cpus_per_task: int = Field(default=64, ge=1)
    mem_gb: int = Field(default=512, ge=1)
    time_min: int = Field(default=24 * 60, ge=1)
    """The job's time limit; a job that reaches it saves a checkpoint and is requeued (see max_timeouts)."""
    nodes: int = Field(default=1, ge=1)
    processes_per_node: int | None = Field(default=None, ge=1)
    """Processes per node of a training run with train.accelerate_config (default: one per GPU, else 1)."""
    array_parallelism: int = Field(default=32, ge=1)
    signal_delay_s: int = Field(default=120, ge=10)
    """How long before the time limit the job is told to save (capped at a quarter of time_min)."""
    max_timeouts: int = Field(default=3, ge=0)
    """Requeues of a run after it reached the time limit, within one `study run`."""
    additional_parameters: dict[str, Any] = Field(
        default_factory=dict, validation_alias=AliasChoices("additional_parameters", "additional"))
    """Any other sbatch option, passed as is (e.g. {mail-type: END}); `additional` is the old name."""


class ExecutorConfig(Strict):
    kind: Literal["local", "slurm"] = "local"
    max_retries: int = Field(default=2, ge=0)
    max_parallel: int | None = Field(default=None, ge=1)
    slurm: SlurmConfig = Field(default_factory=SlurmConfig)


class MixtureDesignConfig(Strict):
    preset: str | None = "paper"
    design: list[Any] | None = None
    """Custom design: explicit code lists and/or {choose, from, plus} generators (overrides preset)."""


class StudyConfig(Strict):
    name: str = "study"
    data_seed: int = 0
    """Seed of the item sampling and train/validation split (the same items for every run)."""
    output_dir: str = "runs"
    """Root of the run store (relative paths: to the config file)."""
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    """Training seeds: every configuration is trained once per seed."""
    languages: LanguagesConfig = Field(default_factory=LanguagesConfig)
    tasks: dict[str, TaskConfig] = Field(default_factory=_default_tasks)
    models: list[ModelConfig]
    mixtures: MixtureDesignConfig = Field(default_factory=MixtureDesignConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)
    base_dir: str = "."
    """Set by the loader: the directory of the config file (relative paths resolve against it)."""

    _extra_languages: tuple = PrivateAttr(default=())

    @field_validator("tasks")
    @classmethod
    def _known_tasks(cls, v: dict[str, TaskConfig]):
        for name, tc in v.items():
            try:
                task = tasks.get(name)
            except ConfigError as e:
                raise _FieldError(f"tasks.{name}", str(e)) from None
            for split in ("train", "test"):
                fmt = getattr(tc, split).format
                if fmt != "auto" and fmt not in task.formats:
                    raise _FieldError(f"tasks.{name}.{split}.format", f"'{fmt}' does not feed the {name} task "
                                                                      f"(formats: {', '.join(task.formats)})")
            sample = tc.train.sample
            if sample is not None and sample.format not in task.formats:
                raise _FieldError(f"tasks.{name}.train.sample.format", f"'{sample.format}' does not feed the "
                                                                       f"{name} task (formats: {', '.join(task.formats)})")
        if not v:
            raise ValueError("at least one task is required")
        return v

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, v: list[int]):
        if len(set(v)) != len(v):
            raise ValueError(f"seeds must be distinct, got {v}")
        return v

    @field_validator("models")
    @classmethod
    def _unique_models(cls, v: list[ModelConfig]):
        names = [m.short_name for m in v]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"model names must be unique, repeated: {sorted(dup)} (set `name:`)")
        if not v:
            raise ValueError("at least one model is required")
        return v

    @model_validator(mode="after")
    def _languages_known(self):
        for i, code in enumerate(self.eval.languages):
            if not languages.is_known(code):
                raise _FieldError(f"eval.languages[{i}]", f"unknown language code '{code}'")
        return self

    # -- derived ---------------------------------------------------------------------------------
    @property
    def extra_languages(self) -> tuple:
        """The languages of `languages.extra` (not registered anywhere; see `language_scope`)."""
        return self._extra_languages

    @contextlib.contextmanager
    def language_scope(self) -> Iterator["StudyConfig"]:
        """The language table with this study's extra languages, for the duration of the block."""
        with languages.extended(self._extra_languages):
            yield self

    def mixture_list(self) -> list[mixtures.Mixture]:
        with self.language_scope():  # a design may use the study's extra languages
            if self.mixtures.design is not None:
                return mixtures.expand_design(self.mixtures.design, source="mixtures.design")
            return mixtures.design_mixtures(self.mixtures.preset or "paper")

    def model(self, name: str) -> ModelConfig:
        for m in self.models:
            if m.short_name == name:
                return m
        raise ConfigError(f"no model named '{name}' in the config (have: {[m.short_name for m in self.models]})")

    def task(self, name: str) -> TaskConfig:
        if name not in self.tasks:
            raise ConfigError(f"task '{name}' is not in the config (have: {list(self.tasks)})")
        return self.tasks[name]

    def resolve_path(self, value: str) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else Path(self.base_dir) / p

    @property
    def output_path(self) -> Path:
        return self.resolve_path(self.output_dir)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class _FieldError(ValueError):
    def __init__(self, field: str, msg: str):
        super().__init__(msg)
        self.field = field


def _format_validation_error(source: str, err: ValidationError) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "<root>"
    msg = first["msg"]
    ctx_err = (first.get("ctx") or {}).get("error")
    if isinstance(ctx_err, _FieldError):
        loc, msg = ctx_err.field, str(ctx_err)
    elif first["type"] == "extra_forbidden":
        msg = "unknown field (typo?)"
    elif first["type"] == "missing":
        msg = "required field is missing"
    msg = msg.removeprefix("Value error, ")
    more = len(err.errors()) - 1
    return f"{source}: field '{loc}': {msg}" + (f" (+{more} more error{'s' * (more > 1)})" if more else "")


def parse_config(doc: Any, source: str = "<config>", base_dir: str | Path = ".") -> StudyConfig:
    """A config mapping -> StudyConfig; its extra languages are read, not registered (no global effect)."""
    if not isinstance(doc, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level")
    doc = dict(doc)
    if "base_dir" in doc:
        raise ConfigError(f"{source}: field 'base_dir': set by linguamix, not in the file")
    extra = (doc.get("languages") or {}).get("extra") if isinstance(doc.get("languages"), dict) else None
    extra_langs: list = []
    if extra:
        p = Path(extra) if Path(extra).is_absolute() else Path(base_dir) / extra
        try:
            extra_langs = languages.load_yaml(p)
        except ConfigError as e:
            raise ConfigError(f"{source}: field 'languages.extra': {e}") from None
    doc["base_dir"] = str(base_dir)
    try:
        scope = languages.extended(extra_langs)
        scope.__enter__()
    except ConfigError as e:
        raise ConfigError(f"{source}: field 'languages.extra': {p}: {e}") from None
    try:
        cfg = StudyConfig.model_validate(doc)
        cfg._extra_languages = tuple(extra_langs)
        if not cfg.mixture_list():
            raise ConfigError("the design has no mixture, so the study has no training run (give at least one)")
    except ValidationError as e:
        raise ConfigError(_format_validation_error(source, e)) from None
    except ConfigError as e:
        raise ConfigError(f"{source}: field 'mixtures': {e}") from None
    finally:
        scope.__exit__(None, None, None)
    return cfg


def load_config(path: str | Path) -> StudyConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config ({e.strerror})") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}:{where} not valid YAML ({getattr(e, 'problem', None) or e})") from None
    return parse_config(doc, source=str(path), base_dir=path.parent.resolve())
