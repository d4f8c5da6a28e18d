"""The training corpus: composition, rendering, mixing, captions, features."""
