"""Shipped model files (package data): quality_default.npz, the default of `curation.quality.load()`; see README.md."""
