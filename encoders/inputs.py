"""Turning user inputs (paths, arrays, tensors) into tensors, with errors that name the input."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch


class InputError(ValueError):
    """An input could not be used; the message names it, says what was expected and the fix."""


def describe(item: Any) -> str:
    """A short human name for an input, for error messages and labels."""
    if isinstance(item, (str, os.PathLike)):
        return str(item)
    if isinstance(item, tuple) and len(item) == 2:
        return describe(item[0])
    if isinstance(item, (np.ndarray, torch.Tensor)):
        return f"{type(item).__name__} of shape {tuple(item.shape)}"
    return type(item).__name__


def as_list(inputs: Any) -> list:
    """One input or a sequence of inputs -> list of inputs.

    Strings, paths, arrays/tensors and (array, rate) tuples count as ONE input; lists count as many.
    """
    if isinstance(inputs, (str, os.PathLike, np.ndarray, torch.Tensor)):
        return [inputs]
    if isinstance(inputs, tuple) and len(inputs) == 2 and isinstance(inputs[1], (int, float)) \
            and not isinstance(inputs[0], (str, os.PathLike)):
        return [inputs]
    if isinstance(inputs, Sequence):
        items = list(inputs)
        if not items:
            raise InputError("got an empty list of inputs; pass at least one file, array or tensor")
        return items
    raise InputError(f"cannot use an input of type {type(inputs).__name__}; expected a file path, "
                     f"a numpy array, a torch tensor, or a list of them")


def existing_file(path: str | os.PathLike, what: str) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"{what} file '{p}' does not exist; check the path "
                                f"(relative paths resolve from {os.getcwd()})")
    if p.is_dir():
        raise InputError(f"{what} input '{p}' is a directory; pass a file inside it")
    if p.stat().st_size == 0:
        raise InputError(f"{what} file '{p}' is empty (0 bytes); re-export or re-download it")
    return p


def check_finite(x: torch.Tensor, name: str) -> None:
    if not torch.isfinite(x).all():
        bad = (~torch.isfinite(x)).sum().item()
        raise InputError(f"{name} contains {bad} NaN or inf value(s); clean it first, "
                         f"e.g. numpy.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)")
