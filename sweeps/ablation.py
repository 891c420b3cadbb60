"""Ablation (thesis Fig. 5.3): SUPClust, its two ablations and TypiClust.

Same flags as every sweep (see --help); the space is sweeps/ablation.yaml.
"""

from pathlib import Path

from alsys.sweep.cli import sweep_main

if __name__ == "__main__":
    raise SystemExit(sweep_main(Path(__file__).with_suffix(".yaml")))
