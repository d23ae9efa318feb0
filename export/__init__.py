"""Checkpoint / registered model → ONNX → Triton model repositories, with a promotion gate and rollback.

Entry points: ``python -m export`` (export + gate) and ``python -m export.rollback``;
the FP32 vs INT8 throughput benchmark is ``python -m benchmarks.int8_bench``.
"""
