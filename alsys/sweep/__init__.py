"""Sweeps on Ray Tune, as stages, one job per module (pycls-style):

- ``spec``: the YAML space expanded, once, into validated, frozen, named trials (a ``Sweep``);
- ``prepare``: the datasets loaded and checked against the trials before anything starts, then
  the Ray connection, every trial's frozen config written to the sweep's storage, embeddings and
  HVAEs into the store and into Ray's object store;
- ``launch``: the Tuner (a grid of trials, or a search algorithm and a scheduler sampling
  candidates), its callbacks, and interrupts (``trainable`` is what a trial runs);
- ``collect``: the results table, the summary and the parent run's learning curves;
- ``conclude``: the verdict on the claim the YAML names (alsys.verdict), printed last, written
  beside the results and logged to the parent run;
- ``cli``: the command line every sweep script shares, running the stages in order, and the
  parent run around them, closed as failed on any error.

Importing this package (or ``spec`` and ``collect``) does not import Ray.
"""

from alsys.stats import params_label
from alsys.sweep.collect import configuration_means, results_table, summary_text
from alsys.sweep.spec import Candidates, Sweep, SweepSpec, Trial, load_sweep, read_spec

__all__ = [
    "Candidates",
    "Sweep",
    "SweepSpec",
    "Trial",
    "configuration_means",
    "load_sweep",
    "params_label",
    "read_spec",
    "results_table",
    "summary_text",
]
