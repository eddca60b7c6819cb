"""Argument checks shared by every layer: each names the argument, the expected form and what was received.

Constructors of model parts raise ValueError for a bad config value (``checkpositiveint``,
``checkintlist``); user-facing arguments of the predictors raise TypeError for a wrong type and
ValueError for a wrong value (``asflag``, ``asnumber``, ``asint``).
"""
import numbers
from typing import Any, Optional, Union

import numpy as np
import torch


def isint(value: Any) -> bool:
    """Whether ``value`` is an integer (Python or numpy) and not a bool.

    Args:
        value: anything.
    Returns:
        True for a numbers.Integral that is not a bool.
    """
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def ispositiveint(value: Any) -> bool:
    """Whether ``value`` is an integer (not a bool) greater than 0.

    Args:
        value: anything.
    Returns:
        True for an int (see :func:`isint`) > 0.
    """
    return isint(value) and value > 0


def checkpositiveint(argname: str, value: Any) -> int:
    """``value`` as an int, checked to be a positive integer.

    Args:
        argname: the argument's name in the message.
        value: the value to check.
    Returns:
        ``value`` as a Python int.
    Raises:
        ValueError: naming ``argname``, unless it is a positive integer.
    """
    if not ispositiveint(value):
        raise ValueError(f'{argname} must be a positive int, got {value!r}')
    return int(value)


def checkintlist(argname: str, value: Any, length: Optional[int] = None, minimum: int = 0) -> list:
    """``value`` as a list, checked to be a non-empty list/tuple of ints >= ``minimum`` (of ``length``).

    Args:
        argname: the argument's name in the message.
        value: the value to check.
        length: the length it must have, or None for any.
        minimum: the smallest int allowed.
    Returns:
        ``value`` as a list.
    Raises:
        ValueError: anything else.
    """
    ok = isinstance(value, (list, tuple)) and len(value) > 0 and all(isint(v) and v >= minimum for v in value)
    if not ok or (length is not None and len(value) != length):
        form = f'{length} ' if length is not None else ''
        raise ValueError(f'{argname} must be a non-empty list of {form}ints >= {minimum}, got {value!r}')
    return list(value)


def shapeof(value: Any) -> Union[tuple, str]:
    """A printable shape, for error messages.

    Args:
        value: anything.
    Returns:
        The shape tuple of a tensor or array (or of nested lists), 'a ragged list' for nested lists of uneven
        length, else the type's name.
    """
    if isinstance(value, (torch.Tensor, np.ndarray, np.generic)):
        return tuple(value.shape)
    if isinstance(value, (list, tuple)):
        try:
            return tuple(np.shape(value))
        except (TypeError, ValueError):  # ragged nested lists
            return f'a ragged {type(value).__name__}'
    return type(value).__name__


def asflag(value: Any, argname: str) -> bool:
    """``value`` as a Python bool.

    Truthiness is not used, so that e.g. the string 'False' or None is not silently read as a choice.

    Args:
        value: a bool, numpy.bool_ or the int 0 / 1.
        argname: the argument's name in the message.
    Returns:
        The bool.
    Raises:
        TypeError: anything else.
    """
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)) and value in (0, 1):
        return bool(value)
    raise TypeError(f'{argname} must be a bool, got {type(value).__name__} {value!r}')


def asnumber(value: Any, argname: str, low: Optional[float] = None, high: Optional[float] = None,
             high_open: bool = False) -> float:
    """``value`` as a finite Python float in [low, high] (or [low, high) with ``high_open``); bools are refused.

    Args:
        value: an int or float (Python or numpy).
        argname: the argument's name in the message.
        low, high: the bounds (None: unbounded).
        high_open: ``high`` itself is out of range.
    Returns:
        The float.
    Raises:
        TypeError: a non-number; ValueError: NaN, inf or a value out of range.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f'{argname} must be a number, got {type(value).__name__} {value!r}')
    value = float(value)
    below = low is not None and value < low
    above = high is not None and (value >= high if high_open else value > high)
    if not np.isfinite(value) or below or above:
        form = ''
        if low is not None and high is not None:
            form = f' in [{low:g}, {high:g}{")" if high_open else "]"}'
        elif low is not None:
            form = f' >= {low:g}'
        raise ValueError(f'{argname} must be a finite number{form}, got {value!r}')
    return value


def asint(value: Any, argname: str, low: int) -> int:
    """``value`` as a Python int >= ``low``.

    Args:
        value: an int (Python or numpy).
        argname: the argument's name in the message.
        low: the smallest int allowed.
    Returns:
        The int.
    Raises:
        TypeError: bools, floats and other non-ints; ValueError: smaller ints.
    """
    form = 'a positive int' if low == 1 else f'an int >= {low}'
    if not isint(value):
        raise TypeError(f'{argname} must be {form}, got {type(value).__name__} {value!r}')
    if value < low:
        raise ValueError(f'{argname} must be {form}, got {value!r}')
    return int(value)
