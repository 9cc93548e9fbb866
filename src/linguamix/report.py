"""The analysis report: report.md and index.html, rendered from an `Analysis` (no statistics here).

Both files hold the same blocks (headings, paragraphs, tables, figures); figures are linked (Markdown)
or embedded as <img> of the SVG (HTML), and every CSV is linked. Every number shown carries its n and
its 95 % interval; pooled accuracies carry both the paper's pooled Wilson interval (W) and the
cluster-aware bootstrap interval (C). The header states the seed and the SHA-256 of the input, and a
report made from simulated data says so first.
"""
from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

import pandas as pd

from .analysis.pipeline import CSV_FILES, Analysis
from .timing import format_seconds

Block = tuple  # ("h1"|"h2"|"p"|"list"|"table"|"figure", ...)
SETTING_NAMES = {"en": "English", "direct": "non-English, direct exposure",
                 "cross_lingual": "non-English, cross-lingual"}
PAPER_WIN_RATES = {"en": "75.0 % [59.8, 85.8]", "direct": "87.5 % [73.9, 94.5]", "cross_lingual": "74.4 % [67.1, 80.5]"}
PAPER_COLUMN = "the paper's value (Table 2)"
CLUSTER_TEXT = {"items": "resamples items (by item id, jointly across languages, mixtures, seeds and models) and, "
                         "where two or more runs are pooled, runs",
                "counts": "has no per-item predictions to resample, so it bounds the item noise from the counts "
                          "(perfectly correlated across cells for pooled accuracies, independent for differences) "
                          "and resamples runs where two or more are pooled"}


# -- number formatting -------------------------------------------------------------------------------
def _isnan(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def pct(v: float, digits: int = 1) -> str:
    return "–" if _isnan(v) else f"{100 * v:.{digits}f}"


def ci(lo: float, hi: float, scale: float = 100, digits: int = 1) -> str:
    if _isnan(lo) or _isnan(hi):
        return "[–]"
    return f"[{scale * lo:.{digits}f}, {scale * hi:.{digits}f}]"


def num(v: float, digits: int = 2) -> str:
    return "–" if _isnan(v) else f"{v:+.{digits}f}"


# -- content ---------------------------------------------------------------------------------------------
def build_blocks(a: Analysis) -> list[Block]:
    r, o = a.results, a.options
    df = r.rows
    reg = a.regression.info
    ev = r.cells()
    n_seeds = ev.n_seeds
    blocks: list[Block] = [("h1", "linguamix analysis report")]
    if r.simulated:
        blocks.append(("p", f"**Simulated data.** This report is made from a simulated results table, not from "
                            f"trained models: {r.simulated}. Columns labelled as the paper's show the paper's "
                            f"published values for comparison only."))
    seeds_text = (f"{n_seeds} per configuration; the cluster intervals resample them as runs, and seeds.csv "
                  f"has every accuracy's seed-to-seed spread" if n_seeds >= 2 else
                  "1 per configuration (as in the paper): no interval carries seed-to-seed training noise, except "
                  "where several mixtures are pooled and resampled as runs")
    blocks += [
        ("list", [
            f"Input: `{r.source}` ({len(df)} rows: {df['model'].nunique()} models, {df['task'].nunique()} tasks, "
            f"{df['mixture'].nunique()} mixtures incl. pretrained, {df['eval_lang'].nunique()} evaluation languages)",
            f"Input SHA-256: `{r.sha256}`",
            f"Seed: {o.seed} (bootstrap resamples: {o.n_boot_median} per median, {o.n_boot_regression} for the "
            f"regression; regression split {o.train_fraction:.0%} / {1 - o.train_fraction:.0%})",
            "Per-item predictions: " + ("present (paired tests and item-clustered intervals computed)"
                                        if a.cluster_method == "items" else
                                        "absent (no paired tests; cluster intervals use the counts-only bound)"),
            f"Training seeds: {seeds_text}",
            f"Intervals: W = the paper's pooled Wilson interval (every pooled item counted as independent); "
            f"C = the cluster-aware bootstrap interval ({o.n_boot_cluster} replicates), which "
            f"{CLUSTER_TEXT[a.cluster_method]}. Figures draw "
            + ("C" if o.intervals == "cluster" else "W") + f" (`--intervals {o.intervals}`).",
            f"Tests: paired (exact McNemar where each side is one run, else the paired cluster bootstrap) and "
            f"Welch's t-test on item outcomes (the paper's); verdicts at α = {o.alpha} are counted under both; "
            f"the zero-shot verdict is decided by `{o.zero_shot_test}`.",
            f"Direct exposure for {o.reference} (zero-shot analysis): "
            + ("the English-only model" if o.english_direct == "english-only" else
               f"the mean of the bilingual {o.reference}+X models") + f" (`--english-direct {o.english_direct}`).",
            *r.notes,
        ]),
        ("p", "Conventions. Accuracies are pooled over the cells they summarise (sum of correct / sum of items) and "
              "shown in percent with their number of items n and two 95 % intervals: W, the paper's pooled Wilson "
              "interval, and C, the cluster-aware one (the CSVs: `ci_low`/`ci_high` and "
              "`ci_low_cluster`/`ci_high_cluster`). Differences of accuracies are in percentage points, with "
              "Newcombe's interval (independent items) and the cluster-aware one (paired items). Win rates and "
              "shares of cases carry Wilson intervals over comparisons. "
              "Median differences carry 95 % bootstrap intervals (BCa; percentile where BCa is undefined). "
              f"The reference language of the English-only and bilingual mixtures is `{o.reference}`."),
    ]
    blocks += _scaling(a) + _bilingual(a) + _win_rates(a) + _zero_shot(a) + _heatmaps(a) + _regression(a, reg)
    blocks += _seeds(a) + _power(a) + _time(a)
    files = [*CSV_FILES, "regression.csv", "regression.json"] + (["power.csv"] if a.power is not None else [])
    files += ["time.csv"] if a.time is not None else []
    blocks += [("h2", "Files"), ("list", [f"[{name}]({name})" for name in files])]
    return blocks


def _figure(a: Analysis, name: str, caption: str) -> list[Block]:
    files = a.figures.get(name)
    return [("figure", files, caption)] if files else []


def _scaling(a: Analysis) -> list[Block]:
    s = a.scaling[a.scaling["level"] == "resource"]
    rows = []
    has_cluster = "ci_low_cluster" in s.columns

    def cell(x) -> str:
        text = f"{pct(x['accuracy'])} W{ci(x['ci_low'], x['ci_high'])}"
        if has_cluster:
            text += f" C{ci(x['ci_low_cluster'], x['ci_high_cluster'])} runs={int(x['n_runs'])}"
            if not _isnan(x.get("seed_sd")):
                text += f" seed SD={100 * x['seed_sd']:.1f}"
        return text + f" n={int(x['n'])}"

    for (model, task, group), g in s.groupby(["model", "task", "group"], sort=False):
        cells = {int(x["n_train_langs"]): cell(x) for _, x in g.iterrows()}
        rows.append((model, task, group, cells))
    levels = sorted({lv for *_, cells in rows for lv in cells})
    header = ["model", "task", "group"] + [("pretrained" if lv == 0 else f"L={lv}") for lv in levels]
    table = [[m, t, g] + [cells.get(lv, "") for lv in levels] for m, t, g, cells in rows]
    return [("h2", "1. Accuracy vs number of training languages (Fig. 2, 8)"),
            ("p", "Accuracy (%) by model, task and resource group of the evaluation language (high: "
                  "high-resource languages of the language table, low: low-resource), for each number of training "
                  "languages L, pooled over the mixtures with L languages and the group's languages. "
                  "W: the paper's pooled Wilson interval; C: the cluster-aware interval (see the header); runs: "
                  "training runs pooled (resampled when two or more); n: items counted (each distinct item "
                  "recurs in every pooled cell). Per-language rows are in scaling.csv."),
            ("table", header, table),
            *_figure(a, "scaling", "Accuracy vs number of training languages, by family and resource group"),
            *_figure(a, "scaling_per_language", "Per-language trends; dots are individual mixtures")]


def _bilingual(a: Analysis) -> list[Block]:
    d = a.bilingual_deltas
    table = [[r["task"], SETTING_NAMES.get(r["setting"], r["setting"]),
              f"{num(r['median_delta'])} {ci(r['ci_low'], r['ci_high'], scale=1, digits=2)}", str(int(r["n"])),
              r.get("ci_method", "")] for _, r in d.iterrows()]
    return [("h2", "2. Bilingual vs English-only training (Fig. 3)"),
            ("p", "For every model, task, bilingual mixture en+X and evaluation language: Δ = accuracy(en+X) − "
                  "accuracy(en only), in percentage points. Settings: English evaluation; direct exposure "
                  "(evaluation on X); cross-lingual (any other evaluation language). Median over comparisons "
                  "with its 95 % bootstrap CI; n = comparisons. Each comparison is in bilingual_comparisons.csv "
                  "with both accuracies, their n and Newcombe's interval of the difference."),
            ("table", ["task", "setting", "median Δ (points) [95 % CI]", "n", "CI method"], table),
            *_figure(a, "bilingual_deltas", "Median accuracy change, bilingual vs English-only")]


def _win_rates(a: Analysis) -> list[Block]:
    def rows(df: pd.DataFrame, by_task: bool) -> list[list[str]]:
        return [([r["task"]] if by_task else []) + [
            SETTING_NAMES.get(r["setting"], r["setting"]), f"{int(r['wins'])}/{int(r['total'])}",
            f"{pct(r['win_rate'])} % {ci(r['ci_low'], r['ci_high'])}"]
            + ([] if by_task else [PAPER_WIN_RATES.get(r["setting"], "")]) for _, r in df.iterrows()]

    return [("h2", "3. Win rates of bilingual over English-only training (Table 2)"),
            ("p", "A win is a strictly higher accuracy of the bilingual model (ties are not wins); pooled over "
                  "tasks and models; 95 % Wilson intervals over comparisons."),
            ("table", ["setting", "wins / comparisons", "win rate [95 % CI]", PAPER_COLUMN],
             rows(a.win_rates, False)),
            ("p", "By task:"),
            ("table", ["task", "setting", "wins / comparisons", "win rate [95 % CI]"], rows(a.win_rates_by_task, True)),
            *_verdict_counts(a)]


def _verdict_counts(a: Analysis) -> list[Block]:
    v = a.bilingual_verdicts
    if v.empty:
        return []
    paired = "better_paired" in v.columns and a.cluster_method == "items"

    def counts(r, t):
        return f"{int(r[f'better_{t}'])} / {int(r[f'indistinguishable_{t}'])} / {int(r[f'worse_{t}'])}"

    table = [[SETTING_NAMES.get(r["setting"], r["setting"]), str(int(r["total"])), str(int(r["wins"])),
              counts(r, "paired") if paired else "–", counts(r, "welch")] for _, r in v.iterrows()]
    return [("p", "Verdicts of the per-comparison tests at α = " + str(a.options.alpha) + " (significantly better / "
                  "indistinguishable / significantly worse than English-only): a strict win of the paper's count "
                  "may be a difference of one item. Paired: exact McNemar on the same items (one run a side) or "
                  "the paired cluster bootstrap (several seeds). Per task in bilingual_verdicts_by_task.csv."),
            ("table", ["setting", "comparisons", "wins", "paired: better / indist. / worse",
                       "Welch (paper's test): better / indist. / worse"], table)]


def _zero_shot(a: Analysis) -> list[Block]:
    o = a.options
    s = a.zero_shot_summary
    s = s[s["task"] == "all"]  # per task: zero_shot_summary.csv
    def counts(r, suffix=""):
        return (f"{int(r['above' + suffix])} / {int(r['indistinguishable' + suffix])} / {int(r['below' + suffix])}"
                if f"above{suffix}" in r and not _isnan(r[f"above{suffix}"]) else "–")

    paired = a.cluster_method == "items"
    table = [[r["scope"], r["lang_group"], str(int(r["k"])), r["task"], str(int(r["cases"])), counts(r),
              f"{pct(r['share_not_below'])} % {ci(r['ci_low'], r['ci_high'])}",
              counts(r, "_paired") if paired else "–", counts(r, "_welch")] for _, r in s.iterrows()]
    test = ("Welch's t-test on the per-item 0/1 outcomes (the paper's two-sided t-test)" if o.zero_shot_test == "welch"
            else "the paired test (exact McNemar on the same items where each side is one run, else the paired "
                 "cluster bootstrap; Welch's t-test where per-item predictions are missing)")
    direct_ref = (f"the {o.reference}-only model" if o.english_direct == "english-only"
                  else f"the bilingual {o.reference}+X models pooled (their mean)")
    return [("h2", "4. Zero-shot transfer vs direct exposure (Fig. 4, 9)"),
            ("p", f"For each model, task, evaluation language X and k ∈ {{{', '.join(map(str, o.ks))}}}: accuracy of "
                  f"the k-language mixture(s) without X (zero-shot) vs the bilingual {o.reference}+X mixture (direct; "
                  f"for X = {o.reference}: {direct_ref}, `--english-direct {o.english_direct}`). Verdict at "
                  f"α = {o.alpha} by {test}; the counts under the paired test and under Welch's t-test are shown "
                  "beside it. Scope `largest` = the largest "
                  "model of each family (the paper's Fig. 4). Group: the reference language, or the resource "
                  "level of a non-reference language. Tasks pooled here; per task in zero_shot_summary.csv. "
                  "Every case, with both accuracies, n, Wilson CIs and p-values, is in zero_shot_vs_direct.csv."),
            ("table", ["scope", "group", "k", "tasks", "cases", "verdict: above / indist. / below",
                       "indistinguishable or above [95 % CI]", "paired: above / indist. / below",
                       "Welch (paper's test): above / indist. / below"], table),
            *_figure(a, "zero_shot_vs_direct", "Zero-shot vs direct exposure; hollow markers: no significant "
                                               "difference")]


def _heatmaps(a: Analysis) -> list[Block]:
    blocks: list[Block] = [
        ("h2", "5. Change vs the pretrained model (Fig. 7)"),
        ("p", "Accuracy change (points) of English-only and bilingual training relative to the pretrained model, "
              "training mixture × evaluation language, per model and task. Values with n and Newcombe intervals "
              "are in heatmap_deltas.csv.")]
    if a.heatmaps.empty:
        blocks.append(("p", "Not computed: the input has no pretrained rows or no English-only/bilingual mixtures."))
    for name in sorted(n for n in a.figures if n.startswith("heatmap_")):
        blocks += _figure(a, name, f"Change vs pretrained: {name.removeprefix('heatmap_')}")
    return blocks


def _regression(a: Analysis, info: dict) -> list[Block]:
    c = a.regression.coefficients
    table = [[r["feature"], num(r["coef"], 3), ci(r["ci_low"], r["ci_high"], scale=1, digits=3)]
             for _, r in c.iterrows()]
    dropped = info.get("dropped") or []
    return [("h2", "6. Pooled regression (Table 3)"),
            ("p", f"OLS of accuracy (0–1) over evaluation instances (model × mixture-or-pretrained × task × "
                  f"evaluation language), fit on a random {info['train_fraction']:.0%} of the {info['n_instances']} "
                  f"instances (n_train = {info['n_train']}), 95 % percentile-bootstrap CIs from "
                  f"{info['n_resamples']} resamples of the training instances. Lmax = {info['l_max']}. "
                  f"R² in sample = {info['r2_in_sample']:.3f}; out of sample (n_test = {info['n_test']}) = "
                  f"{'–' if _isnan(info['r2_out_of_sample']) else format(info['r2_out_of_sample'], '.3f')}."
                  + (f" Not estimable in this input (constant or collinear): {', '.join(dropped)}."
                     if dropped else "")),
            ("table", ["feature", "coefficient", "95 % CI"], table),
            *_figure(a, "regression", "Regression coefficients with bootstrap 95 % CIs")]


def _seeds(a: Analysis) -> list[Block]:
    s = a.seeds
    multi = s[s["n_seeds"] >= 2]
    blocks: list[Block] = [("h2", "7. Seed-to-seed spread")]
    if multi.empty:
        return blocks + [("p", "One training seed per configuration (as in the paper): the seed-to-seed spread of "
                               "these accuracies is unknown, and a difference of 1–3 points between two single "
                               "runs carries no estimate of it. Set `seeds: [0, 1, 2]` in the study config to "
                               "measure it; the cluster intervals then resample the seeds.")]
    table = [[task, str(int(g["n_seeds"].max())), str(len(g)), f"{100 * g['seed_sd'].median():.2f}",
              f"{100 * g['seed_sd'].quantile(0.9):.2f}", f"{100 * g['seed_sd'].max():.2f}"]
             for task, g in multi.groupby("task", sort=True)]
    return blocks + [("p", "SD over seeds of each evaluation cell's accuracy (points), for the cells with two or more "
                           "seeds; every cell is in seeds.csv, and the scaling table shows each pooled accuracy's "
                           "seed SD."),
                     ("table", ["task", "seeds", "cells", "median SD", "90th percentile SD", "max SD"], table)]


def _power(a: Analysis) -> list[Block]:
    blocks: list[Block] = [("h2", "Appendix: statistical power")]
    p = a.power
    if p is None:
        return blocks + [("p", "Not computed for this report. `linguamix analyze --power-effect POINTS` adds it for "
                               "the input's design; `linguamix power --design paper --effect 3` gives it for the "
                               "paper's.")]
    table = [[r["comparison"], f"{r['effect_pts']:g}", f"{100 * r['power']:.0f} % ± {100 * r['power_se']:.0f}",
              f"{100 * r['size']:.1f} %", "> 30" if _isnan(r["mde_pts"]) else f"{r['mde_pts']:.1f}", r["test"]]
             for _, r in p.iterrows()]
    n = int(p["n_sims"].iloc[0]) if len(p) else 0
    return blocks + [("p", f"Probability that each comparison detects a planted effect (accuracy points) at α = "
                           f"{a.options.alpha}, from {n} studies simulated on this input's design (calibrated noise) "
                           "and analysed by the same code (± Monte-Carlo SE); size: rejection rate with no effect; "
                           "MDE: the smallest effect detected with 80 % power. Method: docs/statistics.md."),
                     ("table", ["comparison", "effect", "power", "size", "MDE (points)", "test"], table)]


# -- rendering -----------------------------------------------------------------------------------------
def _time(a: Analysis) -> list[Block]:
    """Where the study's time went (the runs' own timings, summed), when the input carries them."""
    if a.time is None:
        return []
    t = a.time
    every = t[t["scope"] == "all"]
    total = every["seconds"].sum()
    models = [m for m in t["scope"].unique() if m != "all"]
    header = ["stage", f"all runs ({int(every['n_runs'].iloc[0])})"] + [f"{m} ({int(t[t['scope'] == m]['n_runs'].iloc[0])})"
                                                                         for m in models]

    def cell(scope: str, stage: str) -> str:
        r = t[(t["scope"] == scope) & (t["stage"] == stage)].iloc[0]
        return f"{format_seconds(r['seconds'])} ({100 * r['share']:.0f} %)"

    rows = [[r["label"], *[cell(s, r["stage"]) for s in ["all", *models]]] for _, r in every.iterrows()]
    return [("h2", "Where the time went"),
            ("p", f"Wall time of each stage, summed over the collected runs ({format_seconds(total)} of run time; runs in "
                  "parallel overlap, so this is device time, not the study's elapsed time), and its share of the "
                  "total. Training steps exclude the epoch-end validation and the checkpoint saves inside "
                  "training. Measured by the runs themselves (logs/timings.jsonl); time.csv has the numbers."),
            ("table", header, rows)]


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(blocks: list[Block]) -> str:
    out: list[str] = []
    for b in blocks:
        kind = b[0]
        if kind == "h1":
            out.append(f"# {b[1]}\n")
        elif kind == "h2":
            out.append(f"## {b[1]}\n")
        elif kind == "p":
            out.append(f"{b[1]}\n")
        elif kind == "list":
            out.append("\n".join(f"- {item}" for item in b[1]) + "\n")
        elif kind == "table":
            header, rows = b[1], b[2]
            if not rows:
                out.append("_No data for this table in the input._\n")
                continue
            lines = ["| " + " | ".join(map(_md_cell, header)) + " |", "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
            out.append("\n".join(lines) + "\n")
        elif kind == "figure":
            files, caption = b[1], b[2]
            png = next((f for f in files if f.endswith(".png")), files[0])
            links = ", ".join(f"[{f.rsplit('.', 1)[1].upper()}]({f})" for f in files)
            out.append(f"![{caption}]({png})\n\n*{caption}* ({links})\n")
    return "\n".join(out)


def _inline_md(text: str) -> str:
    """Escape, then turn `code` and [text](link) into HTML (the only Markdown the blocks use)."""
    import re

    t = html.escape(str(text))
    t = re.sub(r"`([^`]+)`", r"<code>\1</code>", t)
    t = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", t)
    return re.sub(r"\[([^\]]+)\]\(([^)]+)\)", r'<a href="\2">\1</a>', t)


def render_html(blocks: list[Block], title: str = "linguamix analysis report") -> str:
    body: list[str] = []
    for b in blocks:
        kind = b[0]
        if kind in ("h1", "h2"):
            body.append(f"<{kind}>{html.escape(b[1])}</{kind}>")
        elif kind == "p":
            body.append(f"<p>{_inline_md(b[1])}</p>")
        elif kind == "list":
            body.append("<ul>" + "".join(f"<li>{_inline_md(i)}</li>" for i in b[1]) + "</ul>")
        elif kind == "table":
            header, rows = b[1], b[2]
            if not rows:
                body.append("<p><em>No data for this table in the input.</em></p>")
                continue
            head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
            trs = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{trs}</tbody></table>")
        elif kind == "figure":
            files, caption = b[1], b[2]
            img = next((f for f in files if f.endswith(".svg")), files[0])
            links = " ".join(f'<a href="{html.escape(f)}">{f.rsplit(".", 1)[1].upper()}</a>' for f in files)
            body.append(f'<figure><img src="{html.escape(img)}" alt="{html.escape(caption)}">'
                        f"<figcaption>{html.escape(caption)} ({links})</figcaption></figure>")
    style = ("body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;line-height:1.45}"
             "table{border-collapse:collapse;margin:1em 0;font-size:0.85em}"
             "th,td{border:1px solid #ccc;padding:2px 6px;text-align:left;white-space:nowrap}"
             "th{background:#f3f3f3}figure{margin:1.5em 0}img{max-width:100%;height:auto}"
             "figcaption{font-style:italic;font-size:0.9em}code{background:#f3f3f3;padding:0 3px}")
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{html.escape(title)}</title>\n'
            f"<style>{style}</style>\n</head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n")


def write_report(analysis: Analysis, out_dir: str | Path) -> list[Path]:
    """Write report.md and index.html into out_dir (next to the CSVs and figures they link to)."""
    from . import store

    out = Path(out_dir)
    blocks = build_blocks(analysis)
    store.write_text(out / "report.md", render_markdown(blocks))
    store.write_text(out / "index.html", render_html(blocks))
    return [out / "report.md", out / "index.html"]


__all__ = ["write_report", "build_blocks", "render_markdown", "render_html"]
