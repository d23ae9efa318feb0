"""Checkpoint / registered model → ONNX → Triton model repositories, with a promotion gate and rollback.

Entry points: ``python -m export`` (export + gate), ``python -m export.rollback`` and
``python -m export.bench`` (FP32 vs INT8 throughput; not a test).
"""
