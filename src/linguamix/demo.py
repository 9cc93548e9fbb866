"""`linguamix demo`: the whole study, end to end, on a laptop CPU in minutes, offline.

    linguamix demo [--out DIR] [--quick]

design -> base model -> data -> train + select + evaluate -> collect -> analyze + report, every stage
running the same code as the real study (`configs/paper.yaml`); only the config is small
(`linguamix/configs/demo.yaml`, written to DIR/demo.yaml). Rerunning reuses every finished stage.
"""
from __future__ import annotations

import copy
import json
import time
from importlib import resources
from pathlib import Path
from typing import Any, Callable

import yaml

QUICK = {
    # the same design with a shorter pretraining, less data and fewer epochs: the whole pipeline in
    # under three minutes (it shows the machinery; the full demo shows the learning)
    "models": [{"id": "base-model-quick", "name": "tiny-qwen3", "family": "qwen3", "size_b": 0.001,
                "build": "tiny-quick"}],
    "tasks.math.train_per_lang": 40, "tasks.api.train_per_lang": 40,
    "tasks.math.val_per_lang": 8, "tasks.api.val_per_lang": 8,
    "tasks.math.test.options.n": 16, "tasks.api.test.options.n": 16,
    "train.epochs": 2,
}


def demo_config(quick: bool) -> dict[str, Any]:
    doc = yaml.safe_load(resources.files(__package__).joinpath("configs", "demo.yaml").read_text("utf-8"))
    if quick:
        doc = copy.deepcopy(doc)
        doc["name"] = "demo-quick"
        for key, value in QUICK.items():
            node, *path = key.split(".")
            if not path:
                doc[node] = value
                continue
            target = doc[node]
            for part in path[:-1]:
                target = target[part]
            target[path[-1]] = value
    return doc


def run_demo(out: str | Path = "linguamix-demo", *, quick: bool = False, workers: int | None = None,
             progress: bool = True, say: Callable[[str], None] | None = None) -> dict[str, Any]:
    from .analysis.inputs import load_results
    from .analysis.pipeline import AnalysisOptions, run_analysis, write_outputs
    from .analysis.tables import finetuning_gain
    from .collect import collect
    from .config import load_config
    from .report import write_report
    from .runs import expand
    from .store import write_json, write_text
    from .study.executors.local import PoolExecutor
    from .study.loop import run_study
    from .timing import format_seconds
    from .tinymodel import build_models

    import sys

    say = say or (lambda msg: print(msg, file=sys.stderr, flush=True))
    t0 = time.time()
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    def stage(i: int, name: str):
        say(f"\n[{i}/6] {name}")
        return time.time()

    # 1. design: the config, written where the user can read and rerun it
    t = stage(1, "design")
    cfg_path = out / "demo.yaml"
    text = f"# written by `linguamix demo{' --quick' if quick else ''}`; rerun: linguamix study run {cfg_path.name}\n"
    write_text(cfg_path, text + yaml.safe_dump(demo_config(quick), sort_keys=False, allow_unicode=True))
    cfg = load_config(cfg_path)
    mixtures = cfg.mixture_list()
    runs = expand(cfg)
    say(f"    {len(mixtures)} mixtures ({', '.join(m.id for m in mixtures)}) x {len(cfg.tasks)} tasks "
        f"= {sum(r.kind == 'train' for r in runs)} training runs + {sum(r.kind == 'baseline' for r in runs)} "
        f"pretrained baselines; evaluation on {', '.join(cfg.eval.languages)}")
    timings["design"] = time.time() - t

    # 2. the tiny base model (tokenizer + pretraining on plain multilingual text)
    t = stage(2, "base model (tiny Qwen3, pretrained here on the synthetic multilingual corpus)")
    build_models(cfg)
    path = cfg.models[0].path(cfg.base_dir)
    info = json.loads((Path(path) / "tiny_base.json").read_text())
    say(f"    {path} (pretraining loss {info.get('final_loss')})")
    timings["base_model"] = time.time() - t

    # 3-4. data, training with selection, evaluation: the study orchestrator, two CPU workers
    t = stage(3, "data + training + selection + evaluation (linguamix study run)")
    executor = PoolExecutor(cfg, workers=workers or 2)
    try:
        report = run_study(cfg, str(cfg_path), executor, progress=progress)
    finally:
        executor.close()
    if report.failed or report.pending:
        from .errors import LinguamixError

        raise LinguamixError(f"demo: {len(report.failed)} run(s) failed, {len(report.pending)} pending; "
                             f"see `linguamix study status {cfg_path}`")
    timings["runs"] = time.time() - t

    # 5. the results database (only `collect` writes it) and the analysis
    t = stage(4, "collect (results database)")
    db = out / "results.duckdb"
    collect(cfg, out=db)
    say(f"    {db}")
    timings["collect"] = time.time() - t
    t = stage(5, "analyze (every analysis of the paper, with confidence intervals)")
    results = load_results(str(db))
    analysis = write_outputs(run_analysis(results, AnalysisOptions(seed=0, n_boot_median=2000,
                                                                   n_boot_regression=500)), out / "report")
    write_report(analysis, out / "report")
    timings["analyze"] = time.time() - t

    # 6. what happened
    stage(6, "report")
    learning = finetuning_gain(results.rows)
    for row in learning:
        say(f"    {row['task']}: trained languages {100 * row['pretrained_acc']:.1f}% (pretrained, n={row['pretrained_n']})"
            f" -> {100 * row['finetuned_acc']:.1f}% (fine-tuned, n={row['finetuned_n']}): "
            f"{row['gain_points']:+.1f} points")
    total = time.time() - t0
    summary = {"out": str(out), "quick": quick, "report": str(out / "report" / "index.html"),
               "runs": len(runs), "seconds": round(total, 1), "stage_seconds": {k: round(v, 1) for k, v in timings.items()},
               "learning": learning}
    write_json(out / "demo_summary.json", summary)
    say(f"    report: {out / 'report' / 'report.md'}  |  {out / 'report' / 'index.html'}")
    say(f"    results: {db}   config: {cfg_path}")
    say(f"\ndemo finished in {format_seconds(total)}")
    return summary
