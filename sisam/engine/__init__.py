"""The numeric engine: pattern keys, counting, hash tables and the HPB recursion.

Kernels take flat typed arrays only (see ``counts.PatternCounts``); orchestration lives in
``sisam.model``.
"""
