"""`n2m bench`: speed and memory, compared in one run (engine.py), cascades against each other
(routes.py), and what is measured beside seconds (measure.py). `n2m bench corpus` lives with the
corpus (exporter.corpus.bench)."""

from n2m.exporter.bench.engine import main

__all__ = ["main"]
