"""n2m runtime: the ONNX engine, numpy sampler, daemon, OSC namespace, clip pipeline and library.

This world imports numpy, onnxruntime, pedalboard, python-osc, tokenizers and the standard
library only: never torch, never Qt.
"""

__version__ = "0.1.0"
