"""Meta's snake_case names as aliases of ours, so code written for Meta's ``sam2`` package runs unchanged.

Our public names join the same words without underscores (sssegmentation's convention: ``set_image`` is
``setimage``, ``_apply_non_overlapping_constraints`` is ``applynonoverlappingconstraints``), so an alias
is found from Meta's name alone and a typo in the list fails at import time.
"""
from typing import Callable


def _ourname(metaname: str) -> str:
    return metaname.replace('_', '')


def metaaliases(*metanames: str) -> Callable[[type], type]:
    """Class decorator: add each of Meta's ``metanames`` as an alias of the method with the joined name.

    Args:
        metanames: Meta's snake_case method names, e.g. 'set_image' for ``setimage``.
    Returns:
        The decorator, which returns the class itself; it raises AttributeError for a name without its method.
    """
    def decorate(cls):
        for name in metanames:
            setattr(cls, name, getattr(cls, _ourname(name)))
        return cls
    return decorate


def addmetaaliases(namespace: dict, *metanames: str) -> None:
    """Add each of Meta's ``metanames`` to a module's ``namespace`` (its ``globals()``) as an alias.

    Args:
        namespace: the module's ``globals()`` (modified).
        metanames: Meta's snake_case names, e.g. 'show_mask' for ``showmask``.
    Returns:
        None.
    Raises:
        KeyError: a name whose joined name is not in ``namespace``.
    """
    for name in metanames:
        namespace[name] = namespace[_ourname(name)]
