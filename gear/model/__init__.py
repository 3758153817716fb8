"""The GeAR model: configuration, layers, :class:`~gear.model.modeling.GearModel`, loading and saving.

- :mod:`gear.model.modeling`: ``GearConfig``, the BERT-style layers with optional cross-attention,
  the five stacks (query, document, fusion encoders; decoder) and ``build_from_bert`` /
  ``save_pretrained`` / ``from_pretrained``. One file, readable top to bottom.
- :mod:`gear.model.tokens`: tokenising texts and targets, padded to bucket lengths; shared by
  training and inference.

Imports only the core (``gear.io``); everything that uses a GeAR imports this package.
"""
