"""GeAR reproducibility suite: the model, its trainer and inference, evaluation and reporting.

One subpackage per layer, top to bottom (ARCHITECTURE.md "Layers"; ``lint-imports`` checks that
a module imports only from layers below its own):

- :mod:`gear.tools`: benches and real-data checks, outside the workflow;
- :mod:`gear.workflow`: what the Snakemake rules ask (models a run needs, jobs, their outputs);
- :mod:`gear.report`: tables, figures and pages, from results files only;
- :mod:`gear.evaluation`: embeddings, search, metrics, the evaluators and analyses;
- :mod:`gear.training`: GeAR's objectives, ``train_step``, the loop, checkpoints;
- :mod:`gear.inference`: the public Python API of a trained GeAR;
- :mod:`gear.model`: GeAR itself (configuration, layers, loading and saving);
- the core, modules of this package: ``config`` (loading and validating the run config),
  ``layout`` (every output path), ``io`` (atomic files, JSON Lines), ``hub`` (model resolver,
  device picker), ``encoding`` (the ``TextEncoder`` interface), ``logs``, ``provenance``.

``baselines`` sits between evaluation and training; ``data_prep`` beside the model.
See README.md for how to run them.

``gear.load(folder)`` opens a trained GeAR (:func:`gear.inference.trained.load`, README "Use a
trained GeAR"). It is resolved on first access (module ``__getattr__``): the core modules of this
package import nothing above themselves (the layers), and ``import gear`` stays free of torch.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    # A plain import statement, so that lint-imports sees (and checks) this edge.
    if name == "load":
        from gear.inference.trained import load

        return load
    raise AttributeError(f"module 'gear' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), "load"])
