"""The ``alsys`` command line.

``alsys select`` is the practitioner's command: given a pool embedded by any model and the rows
already labeled, it says which rows to label next and why. Bad input ends in one line on stderr
and a non-zero exit, never a traceback (set ALSYS_DEBUG=1 to see one for an internal error).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence
from typing import NoReturn

from alsys import __version__
from alsys.data.imagefolder import DEFAULT_IMAGE_SIZE
from alsys.embed.encoders import ENCODER_NAMES
from alsys.errors import InputError
from alsys.select import run_select
from alsys.select.common import FORMATS, check_seed, parse_param

EXIT_INPUT = 2
EXIT_INTERNAL = 1

# Pool fields as the CLI user knows them.
_FLAGS = {
    "embeddings": "--embeddings",
    "typ_embeddings": "--typ-embeddings",
    "probs": "--probs",
    "mc_probs": "--probs",
    "dropout_probs": "--dropout-probs",
    "clusters": "--clusters",
    "scores": "--scores",
    "labeled": "--labeled",
    "labeled_mask": "--labeled",
    "labels": "--labeled-classes",
    "dims": "--dims",
    "mode": "--mode",
    "dataset": "--dataset",
    "d_clst": "--d-clst",
    "d_typ": "--d-typ",
    "space": "--space",
    "hvae_epochs": "--hvae-epochs",
    "episodes": "--episodes",
    "seed": "--seed",
    "budget": "--budget",
    "setting": "--setting",
}


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line like every other input error."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see --help)\n")
        raise SystemExit(EXIT_INPUT)


def run_embed(args: argparse.Namespace) -> int:
    from alsys.embed import parse_dims, simclr_embeddings
    from alsys.embed.store import EmbeddingStore

    dims = parse_dims(args.dims)
    check_seed(args)
    if args.epochs is not None and args.epochs < 1:
        raise InputError("--epochs", f"must be at least 1, got {args.epochs}")
    store = EmbeddingStore(args.store)
    offline = ("digits", "digits_lt")  # no files, so no --data-root
    options = {"root": args.data_root} if args.data_root and args.dataset not in offline else {}
    by_dim = simclr_embeddings(
        args.dataset,
        dims,
        mode=args.mode,
        seed=args.seed,
        epochs=args.epochs,
        store=store,
        dataset_options=options,
        show_progress=not args.quiet,
        features=args.features,
    )
    built = f"{store.computed} trained now, the rest read from the store"
    print(f"embeddings of {args.dataset} ({args.mode}, seed {args.seed}) in {store.root}: {built}")
    for d, found in by_dim.items():
        print(f"  D={d:<4} train {found.train.shape}  test {found.test.shape}  {found.path}")
    return 0


def run_trial_command(args: argparse.Namespace) -> int:
    from alsys.config import TrialConfig
    from alsys.embed.store import EmbeddingStore
    from alsys.loop import RoundResult, TrialState, prepare_data, run_trial

    config = TrialConfig(
        strategy=args.strategy,
        dataset=args.dataset,
        budget=args.budget,
        setting=args.setting,
        seed=args.seed,
        episodes=args.episodes,
        strategy_params=dict(parse_param(p) for p in args.param),
        d_clst=args.d_clst,
        d_typ=args.d_typ,
        embed_epochs=args.embed_epochs,
        space=args.space,
        hvae_epochs=args.hvae_epochs,
    )
    data = prepare_data(config, EmbeddingStore(args.store), show_progress=not args.quiet)
    print(f"trial {config.run_name()}: b = {config.budget_size(data.dataset.n_classes)} a round")
    print(
        f"{'round':>5} {'labeled':>7} {'accuracy':>8} {'bal.acc':>8} {'select s':>8} "
        f"{'train s':>8}  note"
    )

    def show(result: RoundResult, _: TrialState) -> None:
        note = "random (cold start)" if result.random_fallback else ""
        print(
            f"{result.round:>5} {result.n_labeled:>7} {result.accuracy:>8.3f} "
            f"{result.balanced_accuracy:>8.3f} {result.selection_seconds:>8.2f} "
            f"{result.training_seconds:>8.2f}  {note}",
            flush=True,
        )

    if args.no_track:
        run_trial(config, data, on_round=show)
        return 0
    from alsys.runner import tracked_trial
    from alsys.tracking import resolve_tracking_uri

    uri = resolve_tracking_uri(args.tracking_uri)
    _, run_id = tracked_trial(config, data, uri, args.experiment, on_round=show)
    print(f"MLflow run {run_id} in experiment {args.experiment!r} at {uri}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="alsys", description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--version", action="version", version=f"alsys {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_select(commands)
    _add_embed(commands)
    _add_run(commands)
    _add_report(commands)
    return parser


def _add_select(commands: argparse._SubParsersAction[_Parser]) -> None:
    select = commands.add_parser(
        "select",
        help="choose the next points to label from your own embedded pool",
        description="Choose the next points to label. Prints JSON (or writes --out) with the "
        "selected row indices and, per index, why it was chosen; for a folder of images "
        "(--images) or features with paths (--features/--paths), a CSV by path.",
    )
    select.add_argument("--embeddings", help="pool embeddings, a .npy array of shape (n, d)")
    select.add_argument(
        "--typ-embeddings",
        help="embeddings for typicality (D_typ), shape (n, d_typ); default: --embeddings",
    )
    select.add_argument(
        "--labeled", help="--embeddings: text file of already-labeled row indices (may be empty)"
    )
    select.add_argument("--budget", required=True, type=int, help="how many points to choose")
    select.add_argument("--strategy", required=True, help="a strategy name, e.g. supclust")
    select.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a strategy hyperparameter, e.g. temperature=0.5; repeatable",
    )
    select.add_argument(
        "--probs",
        help="model-based strategies: class probabilities (n, classes) or MC-dropout samples "
        "(T_mc, n, classes), as .npy",
    )
    select.add_argument(
        "--dropout-probs",
        help="dropquery: your model's class probabilities with dropout on its head's input "
        "features, (T, n, classes) .npy",
    )
    select.add_argument(
        "--clusters", help="a precomputed cluster id per row, .npy of shape (n,) (TypiClust-DC)"
    )
    select.add_argument(
        "--scores",
        help="a score per row, .npy of shape (n,): ood_llr picks by it (an HVAE's LLR^{>2}, "
        "e.g. train_llr2.npy of an hvae store entry)",
    )
    select.add_argument(
        "--labeled-classes",
        help="label-aware strategies (supclust_la): the class id of each --labeled row, in the "
        "same order, as a text file of integers",
    )
    select.add_argument("--seed", type=int, default=0, help="seed of all random choices")
    select.add_argument("--out", help="write the output here instead of standard output")
    _add_path_arguments(select)
    select.add_argument("--quiet", action="store_true", help="no progress or status on stderr")
    select.add_argument(
        "--progress", action="store_true", help="progress bars on stderr even when not a terminal"
    )
    select.set_defaults(handler=run_select)


def _add_path_arguments(select: argparse.ArgumentParser) -> None:
    """The flags of ``alsys select`` for pools given by path."""
    select.add_argument(
        "--images", help="a folder of images (png, jpg, webp; recursive), embedded with SimCLR"
    )
    select.add_argument("--features", help="your own embedding of images, .npy (n, d)")
    select.add_argument("--paths", help="with --features: one image path per row, a text file")
    select.add_argument(
        "--labels",
        action="append",
        default=[],
        help="with --images/--features: a path,label CSV or a Label Studio export (JSON, "
        "JSON_MIN, CSV, TSV); repeatable",
    )
    select.add_argument(
        "--label-field",
        help="--labels: the Label Studio choice control holding the label (default: the only "
        "one; 'label' in flat exports)",
    )
    select.add_argument(
        "--encoder",
        choices=ENCODER_NAMES,
        help="--images: simclr (default, trained on the folder) or a pretrained encoder",
    )
    select.add_argument(
        "--weights", help="--images with a pretrained --encoder: its weights file (no download)"
    )
    select.add_argument(
        "--image-size",
        type=int,
        help=f"--images with simclr: side in pixels (default {DEFAULT_IMAGE_SIZE})",
    )
    select.add_argument(
        "--epochs", type=int, help="--images with simclr: epochs (default: the preset's)"
    )
    select.add_argument("--store", help="--images: embedding store (default $ALSYS_STORE or cache)")
    select.add_argument(
        "--format",
        choices=FORMATS,
        help="--images/--features output: csv (default), json, or labelstudio (tasks and a "
        "labeling config)",
    )
    select.add_argument(
        "--classes",
        help="--format labelstudio: the labels you will use, comma-separated, added to those "
        "seen so far in the labeling config",
    )


def _add_embed(commands: argparse._SubParsersAction[_Parser]) -> None:
    embed = commands.add_parser(
        "embed",
        help="train SimCLR embeddings at the given dimensions (once) and store them",
        description="Train SimCLR embeddings as needed and print where they are. Trainings "
        "are cached in the embedding store, keyed by everything that determines them.",
    )
    embed.add_argument("--dataset", required=True, help="digits, digits_lt, cifar10, ...")
    embed.add_argument("--dims", required=True, help="comma-separated dimensions, e.g. 8,16,32")
    embed.add_argument(
        "--mode",
        choices=["nested", "separate"],
        default="nested",
        help="nested: one training for every D (default); separate: one training per D",
    )
    embed.add_argument("--seed", type=int, default=0)
    embed.add_argument("--epochs", type=int, help="override the dataset preset's epochs")
    embed.add_argument(
        "--features",
        choices=("backbone", "head"),
        help="which tensor is the embedding: the backbone's features before the projection head "
        "(the presets' choice, as the reference code) or the head's output",
    )
    embed.add_argument("--store", help="embedding store folder (default $ALSYS_STORE or cache)")
    embed.add_argument("--data-root", help="dataset folder (default $ALSYS_DATA or cache)")
    embed.add_argument("--quiet", action="store_true", help="no progress bars")
    embed.set_defaults(handler=run_embed)


def _add_run(commands: argparse._SubParsersAction[_Parser]) -> None:
    run = commands.add_parser(
        "run",
        help="run one trial: the full episodic loop, tracked in MLflow",
        description="Run one trial (select, label, train, evaluate for --episodes rounds), "
        "print a per-round table and log it to MLflow.",
    )
    run.add_argument("--dataset", default="digits", help="digits, digits_lt, cifar10, ...")
    run.add_argument("--strategy", required=True)
    run.add_argument("--budget", default="tiny", choices=["tiny", "small"])
    run.add_argument("--setting", default="ssl", choices=["ssl", "fsl"])
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    run.add_argument("--d-clst", type=int, help="SimCLR dimension for clustering")
    run.add_argument("--d-typ", type=int, help="SimCLR dimension for typicality")
    run.add_argument("--episodes", type=int, default=5)
    run.add_argument("--embed-epochs", type=int, help="override the SimCLR preset's epochs")
    run.add_argument(
        "--space",
        default="simclr",
        help="where clustering strategies select: simclr, an HVAE latent "
        "<hvae|hvae-emb>:z<0|1|2>:<mean|rp> (thesis chapter 3) such as hvae:z2:mean, or a "
        "baseline on the raw images: pixels, or pca:<D> such as pca:32",
    )
    run.add_argument("--hvae-epochs", type=int, help="override the HVAE preset's epochs")
    run.add_argument("--store", help="embedding store folder")
    run.add_argument(
        "--tracking-uri", help="MLflow URI (default: sqlite:///<cwd>/mlflow.db, absolute)"
    )
    run.add_argument("--experiment", default="alsys", help="MLflow experiment name")
    run.add_argument("--no-track", action="store_true", help="do not log to MLflow")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.set_defaults(handler=run_trial_command)


def _add_report(commands: argparse._SubParsersAction[_Parser]) -> None:
    report = commands.add_parser(
        "report",
        help="write an HTML report (plots also as PNG) of one MLflow experiment",
        description="Read an experiment's runs from MLflow and write a self-contained HTML "
        "report: learning curves, D_clst x D_typ heatmaps, ablation bars, paired statistics, "
        "one run's typicality/SUP scatter and t-SNE, the Optuna study, failed trials.",
    )
    report.add_argument("--experiment", required=True, help="the MLflow experiment's name")
    report.add_argument("--tracking-uri", help="MLflow URI (default: sqlite:///<cwd>/mlflow.db)")
    report.add_argument("--out", required=True, help="folder for index.html and the PNGs")
    report.add_argument("--run", help="the run to show in detail (default: a finished SUPClust)")
    report.add_argument("--store", help="the embedding store the sweep used (for that run)")
    report.set_defaults(handler=run_report)


def run_report(args: argparse.Namespace) -> int:
    import logging

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.getLogger("mlflow").setLevel(logging.WARNING)  # no store set-up chatter
    from alsys.report import build_report

    page = build_report(args.experiment, args.out, args.tracking_uri, args.run, args.store)
    print(f"report: {page}")
    return 0


def _one_line_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    line: str | None = None,
) -> str:
    """A warning as one line of the command's own (``alsys: warning: ...``), no source line."""
    return f"alsys: warning: {category.__name__}: {message}\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    prog = f"alsys {args.command}"
    previous, warnings.formatwarning = warnings.formatwarning, _one_line_warning
    try:
        return int(args.handler(args))
    except InputError as error:
        field = _FLAGS.get(error.field, error.field)
        print(f"{prog}: error: {field}: {error.problem}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; nothing was written", file=sys.stderr)
        return 130
    except OSError as error:  # a full disk, a quota, a read-only folder: the system's word
        print(f"{prog}: error: {error.strerror or error}", file=sys.stderr)
        return EXIT_INTERNAL
    except MemoryError:
        print(f"{prog}: error: out of memory; try a smaller pool or budget", file=sys.stderr)
        return EXIT_INTERNAL
    except Exception as error:  # a bug, not bad input: one line unless debugging
        if os.environ.get("ALSYS_DEBUG"):
            raise
        print(
            f"{prog}: internal error: {type(error).__name__}: {error} "
            "(set ALSYS_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL
    finally:
        warnings.formatwarning = previous  # in-process callers keep their own format


if __name__ == "__main__":
    raise SystemExit(main())
