"""Statistics and figures: pure functions on DataFrames (the only place statistics are computed).

    inputs.py    read + validate a results table (CSV, Parquet, or the DuckDB of `linguamix collect`)
    stats.py     Wilson / Newcombe intervals, bootstrap medians, Welch and McNemar tests, OLS bootstrap
    tables.py    the paper's analyses (scaling, bilingual deltas, win rates, zero-shot, heatmaps, regression)
    figures.py   one function per figure; byte-stable PNG + SVG
    pipeline.py  `linguamix analyze`: run every analysis, write CSVs and figures (report: linguamix.report)
    simulate.py  `linguamix simulate`: results tables drawn from planted regression coefficients
"""
