"""onnxruntime session options for serving, from MAAS_ORT_THREADS (Settings.ort_threads).

intra_op_num_threads: the threads one `session.run` may use. onnxruntime's default (0) means one per
physical core it detects; we default to os.cpu_count(), the vCPUs the environment sees (Lambda's CPU
share grows with MemorySize, one full vCPU at 1,769 MB, up to 6 at 10,240 MB: set MAAS_ORT_THREADS to
match a small MemorySize). Single records gain nothing from more threads; 1,000-record requests do
(~2x on an LSTM). Lambda runs one request per environment, so no other call competes for them.

Not used: caching the optimised graph in /tmp (`optimized_model_filepath`). A new Lambda environment
starts with an empty /tmp, so a cold start would still optimise, and warm environments already keep
their sessions in memory (maas_core.model_cache).
"""

from __future__ import annotations

import os

import onnxruntime as ort

from maas_core.settings import get_settings


def intra_op_threads() -> int:
    """MAAS_ORT_THREADS if set (a positive integer), else os.cpu_count()."""
    return get_settings().ort_threads or os.cpu_count() or 1


def session_options() -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL  # fuse and fold once, at load
    options.intra_op_num_threads = intra_op_threads()
    options.inter_op_num_threads = 1  # sequential execution: one graph branch at a time, no second pool
    return options
