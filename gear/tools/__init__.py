"""Tools outside the workflow: benches, real-data checks, operator counting, memory sampling.

- :mod:`gear.tools.bench`: ``python -m gear.tools.bench`` (train, encode, search, workflow, run).
- :mod:`gear.tools.opcount`: ATen operators, casts and host synchronisations of a step.
- :mod:`gear.tools.treemem`: wall time and peak memory of a process tree.
- :mod:`gear.tools.squad_check`: a GeAR training on real SQuAD text with per-epoch numbers.
- :mod:`gear.tools.squad_baseline`: a pretrained encoder on the real SQuAD dev set.
- :mod:`gear.tools.learnability`: a tiny GeAR on synthetic copy and localization tasks.

The top layer: may import every other package; none imports it.
"""
