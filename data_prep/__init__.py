"""Data preparation: one builder per data set, the RIR synthesis pipeline, and the mini data.

Imports only the core of ``gear`` (config, io, hub); nothing of the model, training, evaluation,
report or tools layers (``lint-imports``).
"""
