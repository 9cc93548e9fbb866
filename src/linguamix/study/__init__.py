"""Orchestration: running a study's runs to completion and reporting their state.

    state.py      the runs' effective state (`study status`, `plan`)
    compute.py    tokens, FLOPs and GPU-hours of every run (`plan`)
    pipeline.py   one run: train, select, evaluate (what every job executes)
    loop.py       the orchestrator (`study run`): start, poll, retry, requeue
    executors/    where runs execute: inline, a worker pool, subprocesses, SLURM

The runs themselves (expansion of a config into `RunSpec`s, the hash of what determines each) are a
design fact and live in `linguamix.runs`, so that `collect` and `plan` read them without the orchestrator.
"""
