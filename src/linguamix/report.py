"""The analysis report: report.md and index.html, rendered from an `Analysis` (no statistics here).

Both files hold the same blocks (headings, paragraphs, tables, figures); figures are linked (Markdown)
or embedded as <img> of the SVG (HTML), and every CSV is linked. Every number shown carries its n and
its 95 % interval; the header states the seed and the SHA-256 of the input.
"""
from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

import pandas as pd

from .analysis.pipeline import CSV_FILES, Analysis

Block = tuple  # ("h1"|"h2"|"p"|"list"|"table"|"figure", ...)
SETTING_NAMES = {"en": "English", "direct": "non-English, direct exposure",
                 "cross_lingual": "non-English, cross-lingual"}
PAPER_WIN_RATES = {"en": "75.0 % [59.8, 85.8]", "direct": "87.5 % [73.9, 94.5]", "cross_lingual": "74.4 % [67.1, 80.5]"}


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
    blocks: list[Block] = [
        ("h1", "linguamix analysis report"),
        ("list", [
            f"Input: `{r.source}` ({len(df)} rows: {df['model'].nunique()} models, {df['task'].nunique()} tasks, "
            f"{df['mixture'].nunique()} mixtures incl. pretrained, {df['eval_lang'].nunique()} evaluation languages)",
            f"Input SHA-256: `{r.sha256}`",
            f"Seed: {o.seed} (bootstrap resamples: {o.n_boot_median} per median, {o.n_boot_regression} for the "
            f"regression; regression split {o.train_fraction:.0%} / {1 - o.train_fraction:.0%})",
            "Per-item predictions: " + ("present (paired McNemar tests computed)" if r.predictions is not None
                                        else "absent (no McNemar tests)"),
            *r.notes,
        ]),
        ("p", "Conventions. Accuracies are pooled over the cells they summarise (sum of correct / sum of items) and "
              "shown in percent with 95 % Wilson intervals and their number of items n. Differences of accuracies "
              "are in percentage points. Win rates and shares of cases carry Wilson intervals over comparisons. "
              "Median differences carry 95 % bootstrap intervals (BCa; percentile where BCa is undefined). "
              f"The reference language of the English-only and bilingual mixtures is `{o.reference}`."),
    ]
    blocks += _scaling(a) + _bilingual(a) + _win_rates(a) + _zero_shot(a) + _heatmaps(a) + _regression(a, reg)
    blocks += [("h2", "Files"), ("list", [f"[{name}]({name})" for name in
                                          [*CSV_FILES, "regression.csv", "regression.json"]])]
    return blocks


def _figure(a: Analysis, name: str, caption: str) -> list[Block]:
    files = a.figures.get(name)
    return [("figure", files, caption)] if files else []


def _scaling(a: Analysis) -> list[Block]:
    s = a.scaling[a.scaling["level"] == "resource"]
    rows = []
    for (model, task, group), g in s.groupby(["model", "task", "group"], sort=False):
        cells = {int(x["n_train_langs"]): f"{pct(x['accuracy'])} {ci(x['ci_low'], x['ci_high'])} n={int(x['n'])}"
                 for _, x in g.iterrows()}
        rows.append((model, task, group, cells))
    levels = sorted({lv for *_, cells in rows for lv in cells})
    header = ["model", "task", "group"] + [("pretrained" if lv == 0 else f"L={lv}") for lv in levels]
    table = [[m, t, g] + [cells.get(lv, "") for lv in levels] for m, t, g, cells in rows]
    return [("h2", "1. Accuracy vs number of training languages (Fig. 2, 8)"),
            ("p", "Accuracy (%) by model, task and resource group of the evaluation language (high: "
                  "high-resource languages of the language table, low: low-resource), for each number of training "
                  "languages L, pooled over the mixtures with L languages and the group's languages. "
                  "Per-language rows are in scaling.csv."),
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
            ("table", ["setting", "wins / comparisons", "win rate [95 % CI]", "paper"], rows(a.win_rates, False)),
            ("p", "By task:"),
            ("table", ["task", "setting", "wins / comparisons", "win rate [95 % CI]"], rows(a.win_rates_by_task, True))]


def _zero_shot(a: Analysis) -> list[Block]:
    o = a.options
    s = a.zero_shot_summary
    s = s[s["task"] == "all"]  # per task: zero_shot_summary.csv
    table = [[r["scope"], r["lang_group"], str(int(r["k"])), r["task"], str(int(r["cases"])),
              f"{int(r['above'])} / {int(r['indistinguishable'])} / {int(r['below'])}",
              f"{pct(r['share_not_below'])} % {ci(r['ci_low'], r['ci_high'])}"] for _, r in s.iterrows()]
    test = ("Welch's t-test on the per-item 0/1 outcomes (the paper's two-sided t-test)" if o.zero_shot_test == "welch"
            else "the exact McNemar test on paired items (Welch's t-test where predictions are missing)")
    return [("h2", "4. Zero-shot transfer vs direct exposure (Fig. 4, 9)"),
            ("p", f"For each model, task, evaluation language X and k ∈ {{{', '.join(map(str, o.ks))}}}: accuracy of "
                  f"the k-language mixture(s) without X (zero-shot) vs the bilingual {o.reference}+X mixture (direct; "
                  f"for X = {o.reference}, the {o.reference}-only model). Verdict at α = {o.alpha} by {test}; "
                  "`p_mcnemar` is reported wherever per-item predictions exist. Scope `largest` = the largest "
                  "model of each family (the paper's Fig. 4). Group: the reference language, or the resource "
                  "level of a non-reference language. Tasks pooled here; per task in zero_shot_summary.csv. "
                  "Every case, with both accuracies, n, Wilson CIs and p-values, is in zero_shot_vs_direct.csv."),
            ("table", ["scope", "group", "k", "tasks", "cases", "above / indist. / below",
                       "indistinguishable or above [95 % CI]"], table),
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


# -- rendering -----------------------------------------------------------------------------------------
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
