"""How many bytes an object graph holds in tensors and arrays (for the stream's flat-memory checks)."""
from typing import Any

import numpy as np
import torch


def reachablebytes(root: Any) -> int:
    """Bytes of every torch tensor and numpy array reachable from ``root``, each storage counted once.

    Follows dict values, list/tuple/set items and the attributes of plain objects (not classes).

    Args:
        root: e.g. an inference state dict.
    Returns:
        The total in bytes (views of one storage count once, with the storage's full size).
    """
    storages, stack, visited = {}, [root], set()
    while stack:
        item = stack.pop()
        if id(item) in visited:
            continue
        visited.add(id(item))
        if isinstance(item, torch.Tensor):
            storage = item.untyped_storage()
            storages[('tensor', storage.data_ptr(), storage.nbytes())] = storage.nbytes()
        elif isinstance(item, np.ndarray):
            base = item if item.base is None else item.base
            storages[('array', id(base))] = getattr(base, 'nbytes', item.nbytes)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend(item)
        elif hasattr(item, '__dict__') and not isinstance(item, type):
            stack.extend(vars(item).values())
    return sum(storages.values())
