"""n2m exporter: corpus synthesis, PyTorch models, training, evaluation and ONNX export."""
