"""HVAE latents and LLR strategies (thesis chapter 3): ``ray job submit -- python sweeps/hvae.py``.

The sweep (sweeps/hvae.yaml), then chapter 3's figures: t-SNE of every latent layer, the KL
per layer during training, and LLR^{>2} in- vs out-of-distribution. They are written to
``--figures`` (default ./figures/<sweep name>) and logged to MLflow as the artifacts of a run
named ``figures`` in the sweep's experiment. Same options as every sweep; see --help.
"""

import argparse
import sys
import tempfile
from pathlib import Path

from alsys.sweep.cli import SweepContext, sweep_main


def draw_figures(context: SweepContext, folder: Path) -> None:
    from alsys.embed.store import EmbeddingStore
    from alsys.hvae_figures import hvae_figures
    from alsys.tracking import log_figures

    trial = context.sweep.trials[0].config
    store = EmbeddingStore(context.store_root)
    simclr = {"mode": trial.embed_mode, "epochs": trial.embed_epochs, "seed": trial.embed_seed}
    with tempfile.TemporaryDirectory() as scratch:
        paths = hvae_figures(
            trial.dataset,
            scratch,
            store=store,
            seed=trial.embed_seed,
            epochs=trial.hvae_epochs,
            simclr=simclr,
        )
        folder.mkdir(parents=True, exist_ok=True)
        for path in paths:
            (folder / path.name).write_bytes(path.read_bytes())
        tags = {"alsys_sweep": context.sweep.name}
        log_figures(context.tracking_uri, context.experiment, list(paths), tags)
    print(f"hvae: {len(paths)} figures in {folder} and in MLflow (run 'figures')")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--figures", help="where the figures go (default ./figures/<sweep name>)")


def after(context: SweepContext) -> None:
    figures = context.args.figures or Path("figures") / context.sweep.name
    draw_figures(context, Path(figures))


if __name__ == "__main__":
    sys.exit(
        sweep_main(Path(__file__).with_suffix(".yaml"), after=after, add_arguments=add_arguments)
    )
