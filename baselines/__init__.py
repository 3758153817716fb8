"""Baselines: the model registry, encoder adapters, and the SBERT / BGE retrainers."""
