"""Sharding a folder of images across torchrun ranks, and merging their per-image COCO files.

Under ``torchrun`` (RANK / WORLD_SIZE / LOCAL_RANK in the environment) a process group is opened with
gloo on CPUs or nccl on GPUs; rank r takes images r, r + world, ... of the sorted list. Without
torchrun everything runs in this process as rank 0 of 1.
"""
import datetime
import json
import os
from typing import Optional, Sequence, TypeVar, Union

import torch

from ..modules.utils.fileio import writejson

T = TypeVar('T')


class Ranks:
    """This process's place in the job: ``rank``, ``world``, ``local_rank`` and the ``device`` to use.

    Used as a context manager: entering opens the process group under torchrun, leaving closes it.

    Args:
        device: 'cpu', 'cuda', 'cuda:N' or a torch.device; None takes this rank's GPU when there is one.
            Under torchrun plain 'cuda' becomes 'cuda:LOCAL_RANK'.
    Raises:
        ValueError: RANK outside [0, WORLD_SIZE).
    """

    def __init__(self, device: Optional[Union[str, torch.device]] = None):
        self.rank = int(os.environ.get('RANK', 0))
        self.world = int(os.environ.get('WORLD_SIZE', 1))
        self.local_rank = int(os.environ.get('LOCAL_RANK', 0))
        if not 0 <= self.rank < self.world:
            raise ValueError(f'RANK must be in [0, WORLD_SIZE), got RANK={self.rank}, WORLD_SIZE={self.world}')
        if device is None:
            device = f'cuda:{self.local_rank}' if torch.cuda.is_available() else 'cpu'
        elif device == 'cuda' and self.world > 1:
            device = f'cuda:{self.local_rank}'
        self.device = torch.device(device)
        self._group = False

    def __enter__(self):
        if self.world > 1:
            import torch.distributed as dist
            backend = 'nccl' if self.device.type == 'cuda' else 'gloo'
            if self.device.type == 'cuda':
                torch.cuda.set_device(self.device)
            # ranks wait for each other only at the end; one slow image must not time the others out
            dist.init_process_group(backend=backend, timeout=datetime.timedelta(days=7))
            self._group = True
        return self

    def __exit__(self, *exc):
        if self._group:
            import torch.distributed as dist
            dist.destroy_process_group()
        return False

    def shard(self, items: Sequence[T]) -> Sequence[T]:
        """This rank's share of a job.

        Args:
            items: the whole job, sorted the same way on every rank.
        Returns:
            Every world-th item from index rank.
        """
        return items[self.rank::self.world]

    def sum(self, count: int) -> int:
        """A count summed over all ranks; every rank waits here for the others.

        Args:
            count: this rank's count.
        Returns:
            The total over the job (``count`` itself without torchrun).
        """
        if not self._group:
            return count
        import torch.distributed as dist
        total = torch.tensor([count], dtype=torch.int64, device=self.device)
        dist.all_reduce(total)
        return int(total.item())


def mergecoco(per_image_paths: Sequence[str], path: str, image_names: Sequence[str]) -> str:
    """One COCO file for a dataset from per-image ones (each from ``recordstococo``), written atomically.

    Args:
        per_image_paths: the per-image COCO files, in the order of ``image_names``.
        path: the merged file to write.
        image_names: the images' file names, sorted; image id = position + 1. Annotation ids run over
            the whole dataset.
    Returns:
        ``path``.
    """
    merged = {'info': {'description': 'masks of the SAMV2 automatic mask generator, one file per dataset'},
              'images': [], 'categories': None, 'annotations': []}
    for image_id, (name, per_image) in enumerate(zip(image_names, per_image_paths), start=1):
        with open(per_image, encoding='utf-8') as file:
            coco = json.load(file)
        merged['categories'] = merged['categories'] or coco['categories']
        merged['images'].append({**coco['images'][0], 'id': image_id, 'file_name': name})
        for annotation in coco['annotations']:
            merged['annotations'].append({**annotation, 'id': len(merged['annotations']) + 1, 'image_id': image_id})
    merged['categories'] = merged['categories'] or [{'id': 1, 'name': 'object', 'supercategory': 'object'}]
    return writejson(path, merged)
