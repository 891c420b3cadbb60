"""Selection spaces: where clustering strategies select (no torch here; see alsys.embed.hvae).

``simclr`` is the SimCLR embedding at D_clst/D_typ. An HVAE latent (thesis chapter 3) is named
``<model>:z<layer>:<mode>``: ``hvae`` is trained on the images, ``hvae-emb`` on the SimCLR
embeddings ("e-z_i"); z0 is the lowest layer, z2 the top; ``mean`` takes z = mu, ``rp`` one
reparameterised sample z = mu + sigma * eps, drawn once with the HVAE's seed.
"""

from __future__ import annotations

from dataclasses import dataclass

from alsys.errors import InputError

LAYERS = 3
MODELS = {"hvae": "images", "hvae-emb": "embeddings"}  # space prefix -> what the HVAE reads
MODES = ("mean", "rp")


@dataclass(frozen=True)
class Space:
    """Where clustering strategies select: SimCLR (``model`` None) or an HVAE latent."""

    model: str | None = None  # "hvae" (images) or "hvae-emb" (SimCLR embeddings)
    layer: int = 0
    mode: str = "mean"  # "mean": z = mu; "rp": z = mu + sigma * eps, drawn once (seeded)

    def __str__(self) -> str:
        return "simclr" if self.model is None else f"{self.model}:z{self.layer}:{self.mode}"


def parse_space(text: str) -> Space:
    """``simclr``, or ``<hvae|hvae-emb>:z<0|1|2>:<mean|rp>`` such as ``hvae:z2:mean``."""
    if text == "simclr":
        return Space()
    parts = str(text).split(":")
    valid = "simclr or <hvae|hvae-emb>:z<0|1|2>:<mean|rp>, e.g. hvae:z2:mean"
    if (
        len(parts) != 3
        or parts[0] not in MODELS
        or parts[1] not in {f"z{j}" for j in range(LAYERS)}
        or parts[2] not in MODES
    ):
        raise InputError("space", f"expected {valid}; got {text!r}")
    return Space(parts[0], int(parts[1][1:]), parts[2])
