"""Baselines: the model registry, encoder adapters, and the SBERT / BGE retrainers.

A layer below evaluation (which builds encoders from the registry) and above training and
inference (a GeAR entry's encoder is ``gear.inference.GearEncoder``): it never imports
``gear.evaluation``, ``gear.report``, ``gear.workflow`` or ``gear.tools``.
"""
