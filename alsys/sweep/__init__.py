"""Sweeps on Ray Tune, as stages, one job per module (pycls-style):

- ``spec``: the YAML space expanded into validated, named trials, each with its identity;
- ``prepare``: the Ray connection, every trial's frozen config written to the sweep's storage,
  embeddings and HVAEs into the store and into Ray's object store;
- ``launch``: the Tuner, its callbacks, and interrupts (``trainable`` is what a trial runs);
- ``collect``: the results table, the summary and the parent run's learning curves;
- ``cli``: the command line every sweep script shares, running the stages in order.

Importing this package (or ``spec`` and ``collect``) does not import Ray.
"""

from alsys.config import params_label
from alsys.sweep.collect import configuration_means, results_table, summary_text
from alsys.sweep.spec import SweepSpec, Trial, load_spec

__all__ = [
    "SweepSpec",
    "Trial",
    "configuration_means",
    "load_spec",
    "params_label",
    "results_table",
    "summary_text",
]
