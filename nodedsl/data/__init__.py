"""Data: trajectory files read and matched to a model, synthesis from datasets, and shooting windows.

Example:
    >>> from nodedsl.data import Trajectories, load_file, make_windows, split_by_trajectory  # doctest: +SKIP
"""

from .loading import load_csv, load_file, load_npz
from .trajectories import Trajectories, match_model
from .windows import Windows, make_windows, split_by_trajectory

__all__ = [
    "Trajectories",
    "Windows",
    "load_csv",
    "load_file",
    "load_npz",
    "make_windows",
    "match_model",
    "split_by_trajectory",
]
