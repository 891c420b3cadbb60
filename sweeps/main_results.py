"""Main results (thesis Fig. 5.10): every strategy x datasets x budgets x settings x seeds.

Same flags as every sweep (see --help); the space is sweeps/main_results.yaml.
"""

from pathlib import Path

from alsys.sweep.cli import sweep_main

if __name__ == "__main__":
    raise SystemExit(sweep_main(Path(__file__).with_suffix(".yaml")))
