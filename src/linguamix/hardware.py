"""Accelerator facts: the dense BF16 peak of each GPU model, for MFU (trainer) and GPU-hour estimates (plan)."""
from __future__ import annotations

import os

PEAK_FLOPS = {"H100": 989e12, "H200": 989e12, "H800": 989e12, "GH200": 989e12, "A100": 312e12, "A800": 312e12,
              "L40S": 362e12, "B200": 2250e12}
"""Dense BF16 tensor-core peak per GPU (no sparsity), matched as a substring of the device name."""
REFERENCE_GPU = "H100"
"""The GPU that plan's GPU-hours are expressed in."""
REFERENCE_PEAK_FLOPS = PEAK_FLOPS[REFERENCE_GPU]


def peak_flops(device_name: str | None) -> float | None:
    """Peak FLOP/s of a device by name; LINGUAMIX_PEAK_TFLOPS overrides (an unlisted GPU); None when unknown."""
    if os.environ.get("LINGUAMIX_PEAK_TFLOPS"):
        return float(os.environ["LINGUAMIX_PEAK_TFLOPS"]) * 1e12
    if not device_name:
        return None
    return next((v for k, v in sorted(PEAK_FLOPS.items(), key=lambda kv: -len(kv[0])) if k in device_name), None)
