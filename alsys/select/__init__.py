"""``alsys select``: the next points to label, from a pool you bring.

- :mod:`alsys.select.embeddings`: the pool as arrays (``--embeddings``, and model outputs if
  you bring them), the labeled rows as indices; JSON by row index.
- :mod:`alsys.select.paths`: the pool by path (``--images DIR``, or ``--features`` with
  ``--paths``), the labels as files or Label Studio exports; CSV, JSON or Label Studio tasks by
  path (:mod:`alsys.select.outputs`).
- :mod:`alsys.select.common`: what both share (``--param``, the seed, the output file, the
  report of a selection).

``alsys.cli`` parses the command line and calls :func:`run_select`; nothing here imports it.
"""

from __future__ import annotations

import argparse


def uses_paths(args: argparse.Namespace) -> bool:
    """Whether the pool is given by path (``--images``, ``--features``, ``--paths``)."""
    return any(getattr(args, name, None) is not None for name in ("images", "features", "paths"))


def run_select(args: argparse.Namespace) -> int:
    """``alsys select``: the flow the pool's flags name."""
    if uses_paths(args):
        from alsys.select.paths import run_paths

        return run_paths(args)
    from alsys.select.embeddings import run_embeddings

    return run_embeddings(args)
