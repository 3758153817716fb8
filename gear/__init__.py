"""GeAR reproducibility suite: the model, its trainer and inference, evaluation and reporting.

See ARCHITECTURE.md for how the packages fit together and README.md for how to run them.
"""

__version__ = "0.1.0"
