"""Checkpoint resolution (URL through torch.hub's cache, or a local path) and strict, named loading."""
import os
import warnings
from urllib.parse import urlparse

import torch


def isurl(path):
    return isinstance(path, str) and urlparse(path).scheme in ('http', 'https')


def resolvecheckpoint(ckptpath, progress=True):
    """Return a local file for ``ckptpath``.

    A URL resolves to ``$TORCH_HOME/hub/checkpoints/<file name>``: a file already there is used
    offline, otherwise it is downloaded with a progress bar. A local path must exist.
    """
    if not isinstance(ckptpath, (str, os.PathLike)):
        raise TypeError(f'ckptpath must be a URL or a local path (str), got {type(ckptpath).__name__}')
    ckptpath = os.fspath(ckptpath)
    if not isurl(ckptpath):
        path = os.path.expanduser(ckptpath)
        if not os.path.isfile(path):
            raise FileNotFoundError(f'checkpoint file not found: ckptpath={ckptpath!r}')
        return path
    filename = os.path.basename(urlparse(ckptpath).path)
    cachedir = os.path.join(torch.hub.get_dir(), 'checkpoints')
    cached = os.path.join(cachedir, filename)
    if os.path.isfile(cached):
        return cached
    os.makedirs(cachedir, exist_ok=True)
    try:
        # downloads to a temporary file and renames it, so an interrupted download leaves nothing behind
        torch.hub.download_url_to_file(ckptpath, cached, progress=progress)
    except Exception as err:  # network errors come in many types (URLError, HTTPError, OSError, ...)
        raise FileNotFoundError(
            f'could not download the checkpoint {ckptpath} ({type(err).__name__}: {err}). Without network access, '
            f'place the file at {cached} (torch.hub cache; set TORCH_HOME to move it) or pass a local path.'
        ) from err
    return cached


def readstatedict(path):
    """Read a checkpoint file with ``weights_only=True`` and return its state dict.

    The official format is ``{'model': state_dict}``; a bare state dict is accepted as well.
    """
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:
        raise ValueError(f'{path} is not a readable PyTorch checkpoint (truncated, corrupt, or not a '
                         f'weights-only torch file): {type(err).__name__}: {err}') from err
    if isinstance(ckpt, dict) and isinstance(ckpt.get('model'), dict):
        ckpt = ckpt['model']
    if not isinstance(ckpt, dict) or not ckpt or not all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        raise ValueError(f'{path} must hold {{"model": state_dict}} (or a state dict of tensors), got '
                         f'{type(ckpt).__name__} with keys {list(ckpt)[:5] if isinstance(ckpt, dict) else "-"}')
    return ckpt


def _listed(names, limit=10):
    names = sorted(names)
    more = f' ... and {len(names) - limit} more' if len(names) > limit else ''
    return ', '.join(names[:limit]) + more


def loadstatedict(model, state_dict, strict=True, source='checkpoint'):
    """Load ``state_dict`` into ``model`` after checking names and shapes.

    With ``strict`` any missing key, unexpected key or shape mismatch raises a ValueError naming them;
    otherwise the matching tensors are loaded and the rest reported in a warning.
    """
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    mismatched = [f'{k} (checkpoint {tuple(state_dict[k].shape)}, model {tuple(own[k].shape)})'
                  for k in own if k in state_dict and state_dict[k].shape != own[k].shape]
    problems = []
    if missing:
        problems.append(f'{len(missing)} missing keys: {_listed(missing)}')
    if unexpected:
        problems.append(f'{len(unexpected)} unexpected keys: {_listed(unexpected)}')
    if mismatched:
        problems.append(f'{len(mismatched)} shape mismatches: {_listed(mismatched)}')
    if problems and strict:
        raise ValueError(f'{source} does not fit {type(model).__name__} (is it for another model size or '
                         f'version?): ' + '; '.join(problems))
    if problems:
        warnings.warn(f'{source} loaded non-strictly into {type(model).__name__}: ' + '; '.join(problems))
        bad = set(mismatched and [m.split(' ')[0] for m in mismatched])
        state_dict = {k: v for k, v in state_dict.items() if k in own and k not in bad}
    model.load_state_dict(state_dict, strict=False)
    return model


def loadpretrained(model, ckptpath, strict=True):
    """Resolve, read and load a checkpoint into ``model``; returns the local file used."""
    path = resolvecheckpoint(ckptpath)
    loadstatedict(model, readstatedict(path), strict=strict, source=path)
    return path
