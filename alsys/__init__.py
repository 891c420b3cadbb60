"""alsys: low-budget ("cold start") active learning, from one selection to cluster-scale sweeps.

The library is importable without Ray or MLflow: those live at the edges (``sweeps/`` and the
tracking module).
"""

__version__ = "0.1.0"
