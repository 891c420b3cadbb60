"""The sweep's prepare stage: the datasets, loaded and checked against the trials before
anything starts; then the Ray connection, and every embedding and HVAE the trials read,
computed once into the store and put once into Ray's object store.

Store entries still missing are computed as Ray tasks (on a GPU when the cluster has one); the
driver then puts each dataset once and each data key's spaces once into the object store, and
trials read both zero-copy (:func:`shared_data`). Nothing here checks a trial again: the spec
checked each field, :func:`load_datasets` what only the data can say.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import ray

from alsys.config import TrialConfig
from alsys.data import Dataset
from alsys.errors import InputError
from alsys.loop import TrialData, build_data, check_data


def _dataset_key(config: TrialConfig) -> str:
    return json.dumps([config.dataset, config.dataset_options], sort_keys=True)


def load_datasets(configs: list[TrialConfig]) -> dict[str, Dataset]:
    """Each dataset the trials read, loaded once (a missing one, or a bad option value, fails
    here), and each trial checked against it (:func:`alsys.loop.check_data`: the pool holds
    every round, a pca:D within the images, ...): before Ray starts or MLflow hears of the
    sweep. Keyed by dataset and options."""
    from alsys.data import load_dataset

    datasets: dict[str, Dataset] = {}
    checked: set[str] = set()
    for config in configs:
        key = _dataset_key(config)
        if key not in datasets:
            datasets[key] = load_dataset(config.dataset, **config.dataset_options)
        what = json.dumps(
            [key, config.space, config.d_clst, config.d_typ, config.episodes, config.budget]
        )
        if what not in checked:
            check_data(config, datasets[key])
            checked.add(what)
    return datasets


DASHBOARD_ENV = "ALSYS_RAY_DASHBOARD"


def connect_ray() -> None:
    """Joins the cluster when there is one (ray job submit, RAY_ADDRESS); else starts Ray
    locally, with its dashboard unless ``ALSYS_RAY_DASHBOARD=0`` (the dashboard is 11 of the
    local Ray's 21 processes and about 3 s of CPU at its start, measured on 2 cores).
    Resources are never passed: that raises when joining an existing cluster."""
    if not ray.is_initialized():
        ray.init(include_dashboard=False if os.environ.get(DASHBOARD_ENV) == "0" else None)


def check_tracking(uri: str) -> None:
    """A SQLite URI is one file on the driver's disk: right for one machine, wrong for a
    cluster, where trials on other nodes could not reach it. Refused outright when the cluster
    already has several nodes; a warning when joining a cluster that may still grow."""
    if not uri.startswith("sqlite:"):
        return
    advice = (
        "run an MLflow server (cluster/local/start.sh, cluster/k8s/mlflow.yaml) and pass "
        "--tracking-uri http://HOST:PORT"
    )
    alive = [n for n in ray.nodes() if n.get("Alive")]  # type: ignore[no-untyped-call]
    if len(alive) > 1:
        raise InputError(
            "--tracking-uri",
            f"{uri} is a SQLite file on this node, but the cluster has {len(alive)} nodes "
            f"whose trials could not log to it; {advice}",
        )
    if os.environ.get("RAY_ADDRESS") or os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR"):
        print(
            f"alsys: warning: MLflow writes to {uri} on the head node. That holds while the "
            f"cluster has one node; if workers join, {advice}.",
            file=sys.stderr,
        )


def _cluster_gpus() -> float:
    resources: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
    return float(resources.get("GPU", 0))


def trial_resources(requested: dict[str, float]) -> dict[str, float]:
    """The requested share, with the GPU part dropped on a cluster without GPUs (a GPU request
    there would stay PENDING forever)."""
    resources = {"cpu": float(requested.get("cpu", 1))}
    if _cluster_gpus() > 0 and requested.get("gpu", 0) > 0:
        resources["gpu"] = float(requested["gpu"])
    return resources


def data_key(config: TrialConfig) -> str:
    """Trials with the same key read the same embeddings."""
    return json.dumps(
        {
            "dataset": config.dataset,
            "options": config.dataset_options,
            "setting": config.setting,
            "d": [config.clustering_dim, config.typicality_dim, config.ssl.embedding_dim],
            "embed": [config.embed_mode, config.embed_epochs, config.embed_seed],
            "space": config.space,
            "hvae": [config.hvae_models, config.hvae_epochs],
            "scores": config.score_source(),
        },
        sort_keys=True,
    )


@ray.remote
def _train_embeddings(config: TrialConfig, store_root: str | None) -> None:
    """Fills the store entry a config needs; returns nothing, so no arrays travel back."""
    from alsys.data import load_dataset
    from alsys.embed.store import EmbeddingStore

    store = EmbeddingStore(store_root)
    build_data(config, load_dataset(config.dataset, **config.dataset_options), store)
    if store.computed:  # another process may have built it while this task waited on the lock
        what = "SimCLR and HVAE" if config.hvae_models else "SimCLR"
        print(f"alsys: trained {what} embeddings for {config.dataset} into {store.root}")


def _training_key(config: TrialConfig) -> str:
    """Trials with the same key share one SimCLR training (one store entry)."""
    options = json.dumps(config.dataset_options, sort_keys=True)
    return json.dumps(
        [
            config.dataset,
            options,
            config.embed_mode,
            config.embed_epochs,
            config.embed_seed,
            config.hvae_models,
            config.hvae_epochs,
        ]
    )


def prepare_embeddings(
    trials: list[TrialConfig], datasets: dict[str, Dataset], store_root: str | None
) -> dict[str, Any]:
    """For each data key, the object refs ``(dataset, spaces)`` that its trials read.

    ``datasets`` are :func:`load_datasets`'s. Store entries still missing are computed first,
    one Ray task per distinct SimCLR training (on a GPU when the cluster has one); entries
    already in the store cost no task. The driver then reads the store (local, or shared
    storage on a cluster) and puts each dataset once and each key's embedding spaces once into
    the object store; trials read both zero-copy.
    """
    from alsys.embed.store import EmbeddingStore, MissingEntry

    by_key: dict[str, TrialConfig] = {}
    for config in trials:
        by_key.setdefault(data_key(config), config)
    reader = EmbeddingStore(store_root, compute=False)
    ready: dict[str, TrialData] = {}
    missing: dict[str, TrialConfig] = {}
    for key, config in by_key.items():
        try:
            ready[key] = build_data(config, datasets[_dataset_key(config)], reader)
        except MissingEntry:
            missing.setdefault(_training_key(config), config)
    if missing:
        _compute_missing(list(missing.values()), store_root)
        for key, config in by_key.items():
            if key in ready:
                continue
            try:
                ready[key] = build_data(config, datasets[_dataset_key(config)], reader)
            except MissingEntry as missing_entry:
                raise RuntimeError(
                    f"the embedding tasks finished but {missing_entry} is not in the store: the "
                    "workers run other alsys code than the driver (the store key holds a hash of "
                    "the SimCLR code), or the store is not shared between the nodes"
                ) from None
    dataset_refs = {id(d): ray.put(d) for d in datasets.values()}
    return {
        key: (
            dataset_refs[id(data.dataset)],
            ray.put((data.features_train, data.features_test, data.clst, data.typ, data.scores)),
        )
        for key, data in ready.items()
    }


def _compute_missing(configs: list[TrialConfig], store_root: str | None) -> None:
    """One Ray task per missing store entry (on a GPU when the cluster has one)."""
    task = _train_embeddings.options(num_gpus=1 if _cluster_gpus() > 0 else 0)
    try:
        ray.get([task.remote(c, store_root) for c in configs])
    except ray.exceptions.RayTaskError as error:
        if isinstance(error.cause, InputError):  # e.g. a dataset missing: say it plainly
            raise error.cause from None
        raise


def shared_data(refs: tuple[Any, Any]) -> TrialData:
    """A trial's TrialData from the object store, zero-copy (the arrays are read-only)."""
    dataset, spaces = ray.get(list(refs))
    return TrialData(dataset, *spaces)
