"""One function per figure of the paper, each from an analysis table to a matplotlib Figure.

Accuracies are drawn in percent; every point or bar carries its 95 % interval as an error bar: for pooled
accuracies the cluster-aware bootstrap interval by default (`intervals="cluster"`, items x runs), or the
paper's pooled Wilson interval (`intervals="wilson"`); the title says which. `save` writes PNG and SVG that
are byte-identical across reruns (fixed SVG hash salt, no dates in metadata).
"""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .. import languages  # noqa: E402
from .tables import SETTINGS, lang_order, model_order  # noqa: E402

TASK_TITLES = {"api": "API calling", "math": "Math reasoning"}
SETTING_TITLES = {"en": "EN", "direct": "Non-EN\n(direct exposure)", "cross_lingual": "Non-EN\n(cross-lingual)"}
RESOURCE_COLORS = {"high": "#c0392b", "low": "#2471a3"}
TASK_MARKERS = {"api": "o", "math": "^"}
DPI = 120
# Text stays text in SVG (smaller, faster, searchable); the hash salt makes SVG ids reproducible.
_STYLE = {"svg.hashsalt": "linguamix", "svg.fonttype": "none", "font.size": 9, "axes.titlesize": 9,
          "axes.labelsize": 9, "legend.fontsize": 8}


INTERVAL_TITLES = {"cluster": "95 % cluster bootstrap CI (items × runs)", "wilson": "95 % pooled Wilson CI (paper)"}


def _bounds(df: pd.DataFrame, intervals: str, suffix: str = "") -> tuple[str, str]:
    """The interval columns to draw: cluster-aware where the table has them, else Wilson."""
    if intervals not in INTERVAL_TITLES:
        raise ValueError(f"unknown intervals {intervals!r} (cluster or wilson)")
    if intervals == "cluster" and f"ci_low_cluster{suffix}" in df.columns:
        return f"ci_low_cluster{suffix}", f"ci_high_cluster{suffix}"
    return f"ci_low{suffix}", f"ci_high{suffix}"


def _interval_title(df: pd.DataFrame, intervals: str, suffix: str = "") -> str:
    return INTERVAL_TITLES["cluster" if _bounds(df, intervals, suffix)[0].startswith("ci_low_cluster") else "wilson"]


def _task_title(task: str) -> str:
    return TASK_TITLES.get(task, task)


def _model_colors(models: list[str]) -> dict[str, tuple]:
    cmap = plt.get_cmap("tab10")
    return {m: cmap(i % 10) for i, m in enumerate(models)}


def _no_data(title: str) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(5, 2))
    ax.axis("off")
    ax.text(0.5, 0.5, f"{title}\n(no data for this analysis in the input)", ha="center", va="center")
    return fig


def save(fig: plt.Figure, stem: Path) -> list[Path]:
    """Write stem.png and stem.svg atomically; return their paths. Closes the figure."""
    from .. import store

    paths = []
    with plt.rc_context(_STYLE):
        for ext, meta in (("png", {"Software": None}), ("svg", {"Date": None, "Creator": None})):
            path = stem.with_suffix(f".{ext}")
            with store.atomic_path(path, "wb") as f:
                fig.savefig(f, format=ext, dpi=DPI, metadata=meta)
            paths.append(path)
    plt.close(fig)
    return paths


def _grid(nrows: int, ncols: int, *, panel: tuple[float, float], left: float = 0.75, right: float = 0.2,
          top: float = 0.7, bottom: float = 0.55, wgap: float = 0.5, hgap: float = 0.7, min_width: float = 0.0,
          **kw):
    """Subplots whose margins and gaps are fixed in inches; at least `min_width` wide (the panels are then
    centred), so that a title or legend wider than a single panel is not cut off.

    Cheaper than tight_layout/constrained layout, which draw the whole figure once more to measure it;
    with dozens of panels that extra draw dominated the analysis run time.
    """
    pw, ph = panel
    w = left + right + ncols * pw + (ncols - 1) * wgap
    if w < min_width:
        left, right, w = left + (min_width - w) / 2, right + (min_width - w) / 2, min_width
    h = top + bottom + nrows * ph + (nrows - 1) * hgap
    fig, axes = plt.subplots(nrows, ncols, figsize=(w, h), squeeze=False, **kw)
    fig.subplots_adjust(left=left / w, right=1 - right / w, bottom=bottom / h, top=1 - top / h,
                        wspace=wgap / pw, hspace=hgap / ph)
    return fig, axes


def _suptitle(fig: plt.Figure, text: str) -> None:
    fig.suptitle(text, y=1 - 0.12 / fig.get_figheight(), va="top", fontsize=10)


def _err(centre, lo, hi) -> np.ndarray:
    """Error-bar lengths below and above, never negative (rounding can put a bound a hair past the
    estimate, e.g. Wilson's lower bound at 0/n), NaN -> no bar."""
    centre, lo, hi = (np.asarray(v, dtype=float) for v in (centre, lo, hi))
    return np.nan_to_num(np.maximum(0.0, [centre - lo, hi - centre]))


def _errorbar(ax, x, acc, lo, hi, **kw):
    acc, lo, hi = (np.asarray(v, dtype=float) * 100 for v in (acc, lo, hi))
    return ax.errorbar(x, acc, yerr=_err(acc, lo, hi), capsize=2, **kw)


# -- Fig. 2 -------------------------------------------------------------------------------------------------
def _fix_axes(ax, xlim, ylim, *, show_x: bool, show_y: bool) -> None:
    """Fixed limits, autoscaling off, tick labels only on the outer panels.

    Cheaper than shared axes, whose limits propagate to every sibling on each artist added.
    """
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_autoscale_on(False)
    ax.tick_params(labelbottom=show_x, labelleft=show_y)
    ax.grid(alpha=0.3)


def _acc_limits(lo: pd.Series, hi: pd.Series) -> tuple[float, float]:
    """A y range in percent covering every interval, with a margin."""
    return (max(0.0, 100 * float(lo.min()) - 5), min(100.0, 100 * float(hi.max()) + 5))


def scaling_figure(scaling: pd.DataFrame, intervals: str = "cluster") -> plt.Figure:
    """Mean accuracy vs number of training languages: rows = tasks, columns = family x resource group."""
    d = scaling[(scaling["level"] == "resource") & (scaling["n_train_langs"] > 0)]
    if d.empty:
        return _no_data("Accuracy vs number of training languages")
    lo_col, hi_col = _bounds(d, intervals)
    tasks = sorted(d["task"].unique(), key=lambda t: (t != "api", t))
    panels = [(f, g) for f in sorted(d["family"].unique()) for g in ("high", "low") if g in set(d["group"])]
    colors = _model_colors(model_order(d))
    cells = dict(tuple(d.groupby(["task", "family", "group"], sort=False)))
    xlim = (0.5, d["n_train_langs"].max() + 0.5)
    with plt.rc_context(_STYLE):
        fig, axes = _grid(len(tasks), len(panels), panel=(3.0, 2.4), hgap=0.75, top=0.85)
        for i, task in enumerate(tasks):
            ylim = _acc_limits(*(d.loc[d["task"] == task, c] for c in (lo_col, hi_col)))
            for j, (family, group) in enumerate(panels):
                ax = axes[i][j]
                _fix_axes(ax, xlim, ylim, show_x=True, show_y=j == 0)
                sub = cells.get((task, family, group), d.iloc[:0])
                for model, s in sub.groupby("model", sort=False):
                    s = s.sort_values("n_train_langs")
                    _errorbar(ax, s["n_train_langs"], s["accuracy"], s[lo_col], s[hi_col], marker="o",
                              ms=3, lw=1.2, color=colors[model], label=f"{model} ({s['size_b'].iloc[0]:g}B)")
                ax.set_title(f"{_task_title(task)}\n{family} · {group}-resource languages")
                if i == len(tasks) - 1:
                    ax.set_xlabel("Number of training languages")
                if j == 0:
                    ax.set_ylabel("Accuracy (%)")
                if len(sub):
                    ax.legend(loc="lower right", fontsize=7)
        _suptitle(fig, "Accuracy vs number of training languages\n(mean over mixtures and languages, "
                       f"{_interval_title(d, intervals)})")
    return fig


# -- Fig. 8 -------------------------------------------------------------------------------------------------
def scaling_per_language_figure(scaling: pd.DataFrame, results: pd.DataFrame, intervals: str = "cluster") -> plt.Figure:
    """Per evaluation language: rows = family x task, columns = languages; lines = models, dots = mixtures."""
    d = scaling[(scaling["level"] == "language") & (scaling["n_train_langs"] > 0)]
    if d.empty:
        return _no_data("Per-language accuracy vs number of training languages")
    lo_col, hi_col = _bounds(d, intervals)
    tasks = sorted(d["task"].unique(), key=lambda t: (t != "api", t))
    rows = [(f, t) for f in sorted(d["family"].unique()) for t in tasks]
    langs = lang_order(d["group"])
    colors = _model_colors(model_order(d))
    lines = dict(tuple(d.groupby(["family", "task", "group"], sort=False)))
    pts = results[results["n_train_langs"] > 0]
    pts = pts.assign(acc=100 * pts["correct"] / pts["n"])
    dots = dict(tuple(pts.groupby(["family", "task", "eval_lang"], sort=False)))
    xlim = (0.5, d["n_train_langs"].max() + 0.5)
    with plt.rc_context(_STYLE):
        fig, axes = _grid(len(rows), len(langs), panel=(2.2, 1.8), wgap=0.2, hgap=0.6, top=0.85, right=1.4)
        for i, (family, task) in enumerate(rows):
            in_row = (d["family"] == family) & (d["task"] == task)
            ylim = _acc_limits(d.loc[in_row, lo_col], d.loc[in_row, hi_col])
            for j, lang in enumerate(langs):
                ax = axes[i][j]
                _fix_axes(ax, xlim, ylim, show_x=i == len(rows) - 1, show_y=j == 0)
                for model, s in lines.get((family, task, lang), d.iloc[:0]).groupby("model", sort=False):
                    s = s.sort_values("n_train_langs")
                    _errorbar(ax, s["n_train_langs"], s["accuracy"], s[lo_col], s[hi_col], lw=1.1, ms=0,
                              color=colors[model], label=model)
                p = dots.get((family, task, lang))
                if p is not None:  # one scatter per panel, coloured by model
                    ax.scatter(p["n_train_langs"], p["acc"], s=6, c=[colors[m] for m in p["model"]], alpha=0.5)
                ax.set_title(f"{family} · {_task_title(task)}\n{lang} ({languages.resource_group(lang)}-resource)")
                if i == len(rows) - 1:
                    ax.set_xlabel("Number of training languages")
                if j == 0:
                    ax.set_ylabel("Accuracy (%)")
            handles, labels = axes[i][0].get_legend_handles_labels()
            if handles:
                axes[i][-1].legend(handles, labels, loc="upper left", bbox_to_anchor=(1.03, 1.0), fontsize=7,
                                   title="Model")
        _suptitle(fig, "Per-language accuracy vs number of training languages\n"
                       f"(lines: mean with {_interval_title(d, intervals)}; dots: individual mixtures)")
    return fig


# -- Fig. 3 -------------------------------------------------------------------------------------------------
def bilingual_figure(deltas: pd.DataFrame) -> plt.Figure:
    """Median accuracy change, bilingual vs English-only, per evaluation setting and task (bootstrap CI)."""
    if deltas.empty:
        return _no_data("Bilingual vs English-only training")
    tasks = sorted(deltas["task"].unique(), key=lambda t: (t != "api", t))
    width = 0.8 / len(tasks)
    counts: dict[str, list[str]] = {setting: [] for setting in SETTINGS}
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(6.4, 3.6))
        for i, task in enumerate(tasks):
            s = deltas[deltas["task"] == task].set_index("setting").reindex(list(SETTINGS))
            x = np.arange(len(SETTINGS)) + (i - (len(tasks) - 1) / 2) * width
            med = s["median_delta"].to_numpy(dtype=float)
            ax.bar(x, med, width, yerr=_err(med, s["ci_low"], s["ci_high"]), capsize=3, label=_task_title(task))
            for setting, n in zip(SETTINGS, s["n"]):
                counts[setting].append("–" if pd.isna(n) else str(int(n)))
        ax.axhline(0, color="black", lw=0.8)
        ax.set_xticks(np.arange(len(SETTINGS)),
                      [f"{SETTING_TITLES[s]}\nn = {' / '.join(counts[s])}" for s in SETTINGS])
        ax.set_xlabel(f"Evaluation setting (n = comparisons: {' / '.join(map(_task_title, tasks))})")
        ax.set_ylabel("Δ accuracy (points)\nbilingual − English-only")
        ax.set_title("Median accuracy change from bilingual vs English-only training (95 % bootstrap CI)")
        ax.legend(title="Task")
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
    return fig


# -- Fig. 4, 9 ----------------------------------------------------------------------------------------------
def zero_shot_figure(zs: pd.DataFrame, intervals: str = "cluster", english_direct: str = "english-only",
                     reference: str = "en") -> plt.Figure:
    """Zero-shot (k languages without X) vs direct bilingual exposure: rows = models, columns = k. The x
    axis names what direct exposure is for the reference language (`english_direct`)."""
    if zs.empty:
        return _no_data("Zero-shot vs direct exposure")
    zlo, zhi = _bounds(zs, intervals, "_zero_shot")
    dlo, dhi = _bounds(zs, intervals, "_direct")
    ref_direct = {"english-only": f"{reference}-only model", "bilingual-mean": f"mean of bilingual {reference}+X"}
    xlabel = f"Direct exposure accuracy (%)\nbilingual {reference}+X; for {reference}: {ref_direct[english_direct]}"
    models = model_order(zs)
    ks = sorted(zs["k"].unique())
    with plt.rc_context(_STYLE):
        fig, axes = _grid(len(models), len(ks), panel=(2.5, 2.5), wgap=0.25, hgap=0.45, top=0.75, bottom=1.45,
                          min_width=7.8)  # the title and the 3-column legend
        cells = dict(tuple(zs.groupby(["model", "k"], sort=False)))
        for i, model in enumerate(models):
            for j, k in enumerate(ks):
                ax = axes[i][j]
                _fix_axes(ax, (0, 100), (0, 100), show_x=i == len(models) - 1, show_y=j == 0)
                sub = cells.get((model, k), zs.iloc[:0])
                # One errorbar call per marker style (few artists: rendering time grows with their number).
                for (resource, task, significant), g in sub.groupby(
                        ["resource", "task", sub["verdict"] != "indistinguishable"], sort=True):
                    x, y = 100 * g["accuracy_direct"].to_numpy(), 100 * g["accuracy_zero_shot"].to_numpy()
                    color = RESOURCE_COLORS[resource]
                    ax.errorbar(x, y, xerr=_err(x, 100 * g[dlo], 100 * g[dhi]),
                                yerr=_err(y, 100 * g[zlo], 100 * g[zhi]),
                                fmt=TASK_MARKERS.get(task, "s"), ms=4, capsize=1.5, lw=0.7, color=color,
                                mfc=color if significant else "white")
                    for lang, xi, yi in zip(g["eval_lang"], x, y):
                        ax.annotate(lang, (xi, yi), xytext=(3, 2), textcoords="offset points", fontsize=6)
                ax.plot([0, 100], [0, 100], ls="--", lw=0.8, color="grey")
                ax.set_title(f"{model} · {k} languages")
                if i == len(models) - 1:
                    ax.set_xlabel(xlabel)
                if j == 0:
                    ax.set_ylabel("Zero-shot accuracy (%)")
        from matplotlib.lines import Line2D

        handles = [Line2D([], [], color=c, marker="o", ls="", label=f"{g}-resource language")
                   for g, c in RESOURCE_COLORS.items()]
        handles += [Line2D([], [], color="grey", marker=m, ls="", label=_task_title(t))
                    for t, m in TASK_MARKERS.items() if t in set(zs["task"])]
        handles += [Line2D([], [], color="black", marker="o", ls="", mfc="white",
                           label="hollow: no significant difference"),
                    Line2D([], [], color="grey", ls="--", label="parity (zero-shot = direct)")]
        fig.legend(handles=handles, loc="lower center", ncol=3, bbox_to_anchor=(0.5, 0.05 / fig.get_figheight()))
        test = "paired test" if "verdict_paired" in zs.columns and (zs["test"] != "welch").any() else "Welch t-test"
        _suptitle(fig, "Zero-shot cross-lingual transfer vs direct bilingual exposure\n"
                       f"({_interval_title(zs, intervals, '_zero_shot')}; hollow: no significant difference, {test})")
    return fig


# -- Fig. 7 -------------------------------------------------------------------------------------------------
def heatmap_figure(heat: pd.DataFrame, family: str) -> plt.Figure:
    """Accuracy change vs the pretrained model (points): rows = tasks, columns = models of the family;
    each panel is source mixture x evaluation language, annotated with the values."""
    d = heat[heat["family"] == family]
    if d.empty:
        return _no_data(f"Change vs pretrained ({family})")
    tasks = sorted(d["task"].unique(), key=lambda t: (t != "api", t))
    models = model_order(d)
    langs = lang_order(d["eval_lang"])
    sources = list(dict.fromkeys(d["mixture"]))
    lim = max(1.0, float(np.nanmax(np.abs(d["delta_pts"]))))
    with plt.rc_context(_STYLE):
        fig, axes = _grid(len(tasks), len(models), panel=(0.5 * len(langs) + 0.2, 0.32 * len(sources) + 0.2),
                          left=1.3, right=1.1, top=0.85, bottom=0.6, wgap=0.25, hgap=0.55)
        im = None
        for i, task in enumerate(tasks):
            for j, model in enumerate(models):
                ax = axes[i][j]
                s = d[(d["task"] == task) & (d["model"] == model)]
                grid = s.pivot(index="mixture", columns="eval_lang", values="delta_pts").reindex(
                    index=sources, columns=langs)
                im = ax.imshow(grid.to_numpy(dtype=float), cmap="RdBu", vmin=-lim, vmax=lim, aspect="auto")
                for (r, c), v in np.ndenumerate(grid.to_numpy(dtype=float)):
                    if not math.isnan(v):
                        ax.text(c, r, f"{v:+.1f}", ha="center", va="center", fontsize=6.5,
                                color="white" if abs(v) > 0.6 * lim else "black")
                ax.set_xticks(range(len(langs)), langs)
                ax.set_yticks(range(len(sources)), sources if j == 0 else [])
                ax.set_title(f"{model} · {_task_title(task)}")
                if i == len(tasks) - 1:
                    ax.set_xlabel("Evaluation language")
                if j == 0:
                    ax.set_ylabel("Training mixture")
        _suptitle(fig, f"{family}: accuracy change vs the pretrained model\nEnglish-only and bilingual training")
        # The colorbar lives in the right margin, beside the panels.
        w, h = fig.get_figwidth(), fig.get_figheight()
        cax = fig.add_axes((1 - 0.95 / w, 0.6 / h, 0.12 / w, 1 - 1.45 / h))
        fig.colorbar(im, cax=cax, label="Δ accuracy vs pretrained (points)")
    return fig


# -- Table 3 ------------------------------------------------------------------------------------------------
def regression_figure(coefs: pd.DataFrame, r2_out: float) -> plt.Figure:
    """Coefficients of the pooled regression with bootstrap 95 % CIs (intercept omitted)."""
    c = coefs[coefs["feature"] != "intercept"].iloc[::-1]
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(6, 3))
        y = np.arange(len(c))
        coef = c["coef"].to_numpy(dtype=float)
        ax.errorbar(coef, y, xerr=_err(coef, c["ci_low"], c["ci_high"]), fmt="o", capsize=3, color="#2c3e50")
        ax.axvline(0, color="black", lw=0.8)
        ax.set_yticks(y, c["feature"])
        ax.set_xlabel("Coefficient (accuracy, 0–1 scale); bars: 95 % bootstrap CI")
        ax.set_title(f"Pooled regression over evaluation instances (out-of-sample R² = {r2_out:.3f})")
        ax.grid(axis="x", alpha=0.3)
        fig.tight_layout()
    return fig
