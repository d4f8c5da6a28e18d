"""Meters that compare audio with audio: note transcription (Basic Pitch on ONNX Runtime), note
F1, key and scale from notes, chroma, per-band spectral distance and stereo image. Each module is
numpy in, numbers out; the evaluations (`exporter.eval_ceiling`, `exporter.eval_notes`) combine them."""
