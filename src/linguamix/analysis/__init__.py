"""Statistics and figures: pure functions on DataFrames (the only place statistics are computed)."""
