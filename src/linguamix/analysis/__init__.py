"""Statistics and figures: pure functions on DataFrames (the only place statistics are computed).

    inputs.py       read + validate a results table (CSV, Parquet, or the DuckDB of `linguamix collect`)
    evaluations.py  per-seed cells and per-item outcome matrices (what the cluster bootstrap resamples)
    stats.py        Wilson / Newcombe intervals, bootstrap medians, Welch and McNemar tests, OLS bootstrap
    clusters.py     cluster-aware bootstrap (items x runs) of pooled accuracies and differences; paired tests
    tables.py       the paper's analyses (scaling, bilingual deltas, win rates, zero-shot, heatmaps, seeds)
    regression.py   the pooled regression (Table 3)
    figures.py      one function per figure; byte-stable PNG + SVG
    pipeline.py     `linguamix analyze`: run every analysis, write CSVs and figures (report: linguamix.report)
    simulate.py     `linguamix simulate`: results tables drawn from planted coefficients (noise: noise.py)
    power.py        `linguamix power`: power and minimum detectable effect of each comparison, by simulation
    coverage.py     the coverage study of docs/statistics.md
"""
