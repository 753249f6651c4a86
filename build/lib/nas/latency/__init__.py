"""Latency of architectures on a target: layers, measurement, the lookup table, calibration.

This package needs only torch (and onnxruntime for that backend), so a table can be built on a
device that has nothing else installed.
"""
