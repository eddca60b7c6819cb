"""Checkpoint resolution (URL through torch.hub's cache, or a local path) and strict, named loading.

Checkpoints are always read with ``torch.load(..., weights_only=True)``: a file holding arbitrary
Python objects is refused instead of unpickled.
"""
import os
import pickle
import re
import warnings
from typing import Optional, Union
from urllib.parse import urlparse

import torch

# with load_ckpt_strict=False at least this share of the model's values must come from the checkpoint
MIN_LOADED_FRACTION = 0.05
# (trunk embed_dim, number of trunk blocks) -> size part of the shipped config names
_HIERA_SIZES = {(96, 12): 'tiny', (96, 16): 'small', (112, 24): 'baseplus', (144, 48): 'large'}


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read, or whose tensors do not fit the model."""


class CheckpointNotFoundError(FileNotFoundError):
    """A checkpoint path that does not exist, or a URL neither in torch.hub's cache nor downloadable."""


def isurl(path: object) -> bool:
    """Whether ``path`` is an http(s) URL.

    Args:
        path: anything (only a str can be a URL).
    Returns:
        True for a str whose scheme is http or https.
    """
    return isinstance(path, str) and urlparse(path).scheme in ('http', 'https')


def resolvecheckpoint(ckptpath: Union[str, os.PathLike], progress: bool = True) -> str:
    """Return a local file for ``ckptpath``.

    A URL resolves to ``$TORCH_HOME/hub/checkpoints/<file name>``: a file already there is used
    offline, otherwise it is downloaded with a progress bar. A local path must exist.

    Args:
        ckptpath: an http(s) URL or a local path (``~`` is expanded).
        progress: show the download's progress bar.
    Returns:
        The local file's path.
    Raises:
        TypeError: a non-path.
        CheckpointNotFoundError: (a FileNotFoundError) naming the path, or the URL and the cache file to put a
            manual download at.
        CheckpointError: a URL without a file name.
    """
    if not isinstance(ckptpath, (str, os.PathLike)):
        raise TypeError(f'ckptpath must be a URL or a local path (str), got {type(ckptpath).__name__} {ckptpath!r:.80}')
    ckptpath = os.fspath(ckptpath)
    if not isurl(ckptpath):
        path = os.path.expanduser(ckptpath)
        if os.path.isdir(path):
            raise CheckpointNotFoundError(f'ckptpath must be a checkpoint file (a URL or a local .pt/.pth file), got '
                                          f'the folder {ckptpath!r}')
        if not os.path.isfile(path):
            raise CheckpointNotFoundError(f'checkpoint file not found: ckptpath={ckptpath!r}')
        return path
    filename = os.path.basename(urlparse(ckptpath).path)
    if not filename:
        raise CheckpointError(f'ckptpath URL must end in a file name (it names the file in the torch.hub cache), '
                              f'got {ckptpath!r}')
    cachedir = os.path.join(torch.hub.get_dir(), 'checkpoints')
    cached = os.path.join(cachedir, filename)
    if os.path.isfile(cached):
        return cached
    try:
        os.makedirs(cachedir, exist_ok=True)
        # downloads to a temporary file and renames it, so an interrupted download leaves nothing behind
        torch.hub.download_url_to_file(ckptpath, cached, progress=progress)
    except Exception as err:  # network errors come in many types (URLError, HTTPError, OSError, ...)
        raise CheckpointNotFoundError(
            f'could not download the checkpoint {ckptpath} ({type(err).__name__}: {err}). Without network access, '
            f'place the file at {cached} (torch.hub cache; set TORCH_HOME to move it) or pass a local path.'
        ) from err
    return cached


def _incache(path):
    cachedir = os.path.join(torch.hub.get_dir(), 'checkpoints')
    return os.path.dirname(os.path.abspath(path)) == os.path.abspath(cachedir)


def _whyunreadable(err):
    """(reason, the error's own words) for a failed ``torch.load``, without torch's advice to drop weights_only."""
    text = str(err)
    if isinstance(err, pickle.UnpicklingError) and text.startswith('Weights only load failed'):
        # keep the unpickler's finding, drop the boilerplate around it
        lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith(
            ('Weights only load failed', 'Check the documentation', 'Please file an issue'))]
        lines = [line.replace('WeightsUnpickler error:', '').strip() for line in lines]
        detail = ' '.join(line for line in lines if line)
        if 'GLOBAL' in detail:
            return 'it holds Python objects other than tensors, which weights_only=True refuses to unpickle', detail
        return 'truncated, corrupt, or not a torch file', detail
    return 'truncated, corrupt, or not a weights-only torch file', ' '.join(text.split())


def readstatedict(path: Union[str, os.PathLike]) -> dict:
    """Read a checkpoint file with ``weights_only=True`` and return its state dict.

    The official format is ``{'model': state_dict}``; a bare state dict is accepted as well.

    Args:
        path: a local checkpoint file.
    Returns:
        The state dict {name: torch.Tensor}, on the CPU.
    Raises:
        CheckpointError: (a ValueError) naming the file, for anything else (truncated, not a torch file, Python
            objects beyond tensors, another layout).
    """
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=True)
    except MemoryError:
        raise
    except Exception as err:
        why, detail = _whyunreadable(err)
        advice = ' It is in the torch.hub cache: delete it to download it again.' if _incache(path) else ''
        message = f'{path} is not a readable PyTorch checkpoint ({why}): {type(err).__name__}: {detail[:300]}'
        raise CheckpointError(message + ('' if message.endswith(('.', '?')) else '.') + advice) from err
    if isinstance(ckpt, dict) and isinstance(ckpt.get('model'), dict):
        ckpt = ckpt['model']
    if not isinstance(ckpt, dict) or not ckpt or not all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        if isinstance(ckpt, dict):
            got = f'a dict with keys {[str(k) for k in list(ckpt)[:5]]}' if ckpt else 'an empty dict'
        else:
            got = type(ckpt).__name__
        raise CheckpointError(f'{path} must hold {{"model": state_dict}} (or a state dict of tensors), got {got}')
    return ckpt


def _listed(names, limit=10):
    names = sorted(names)
    more = f' ... and {len(names) - limit} more' if len(names) > limit else ''
    return ', '.join(names[:limit]) + more


def guessconfigname(state_dict: dict) -> Optional[str]:
    """The shipped config name a SAMV2 state dict fits.

    Args:
        state_dict: {name: torch.Tensor} of a SAMV2 (ssseg's names, as in Meta's checkpoints).
    Returns:
        E.g. 'samv21_hiera_small', or None if unknown.
    """
    patch = state_dict.get('image_encoder.trunk.patch_embed.proj.weight')
    blocks = {int(m.group(1)) for k in state_dict for m in [re.match(r'image_encoder\.trunk\.blocks\.(\d+)\.', k)] if m}
    if not isinstance(patch, torch.Tensor) or patch.dim() == 0 or not blocks:
        return None
    size = _HIERA_SIZES.get((int(patch.shape[0]), max(blocks) + 1))
    if size is None:
        return None
    return f'samv{"21" if "no_obj_embed_spatial" in state_dict else "2"}_hiera_{size}'


def loadstatedict(model: torch.nn.Module, state_dict: dict, strict: bool = True,
                  source: str = 'checkpoint') -> torch.nn.Module:
    """Load ``state_dict`` into ``model`` after checking names and shapes.

    Without ``strict`` the matching tensors are loaded and the rest reported in a warning.

    Args:
        model: the module to load into (modified in place).
        state_dict: {name: torch.Tensor}.
        strict: any missing key, unexpected key or shape mismatch is an error.
        source: what the state dict is, in messages (e.g. the file).
    Returns:
        ``model``.
    Raises:
        CheckpointError: (a ValueError) with ``strict``, naming the missing and unexpected keys and the shape
            mismatches; without it, when the matching tensors hold less than MIN_LOADED_FRACTION of the model's
            values (a predictor never runs with mostly random weights).
    """
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    bad = [k for k in own if k in state_dict and state_dict[k].shape != own[k].shape]
    mismatched = [f'{k} (checkpoint {tuple(state_dict[k].shape)}, model {tuple(own[k].shape)})' for k in bad]
    problems = []
    if missing:
        problems.append(f'{len(missing)} missing keys: {_listed(missing)}')
    if unexpected:
        problems.append(f'{len(unexpected)} unexpected keys: {_listed(unexpected)}')
    if mismatched:
        problems.append(f'{len(mismatched)} shape mismatches: {_listed(mismatched)}')
    if problems:
        theirs, ours = guessconfigname(state_dict), guessconfigname(own)
        if theirs is not None and theirs != ours:
            problems.append(f'the checkpoint looks like one for the config {theirs!r}'
                            + (f' while the model is built as {ours!r}' if ours else ''))
    if problems and strict:
        raise CheckpointError(f'{source} does not fit {type(model).__name__} (is it for another model size or '
                              f'version?): ' + '; '.join(problems))
    if problems:
        skip = set(bad)
        total = sum(v.numel() for v in own.values())
        loaded = sum(v.numel() for k, v in own.items() if k in state_dict and k not in skip)
        if total and loaded < MIN_LOADED_FRACTION * total:
            raise CheckpointError(f'{source} shares almost nothing with {type(model).__name__} even with strict=False '
                                  f'(load_ckpt_strict=False): {loaded / total:.1%} of the model\'s values would be '
                                  f'loaded, at least {MIN_LOADED_FRACTION:.0%} expected, so the model would run with '
                                  'random weights: ' + '; '.join(problems))
        warnings.warn(f'{source} loaded non-strictly into {type(model).__name__}: ' + '; '.join(problems))
        state_dict = {k: v for k, v in state_dict.items() if k in own and k not in skip}
    model.load_state_dict(state_dict, strict=False)
    return model


def loadpretrained(model: torch.nn.Module, ckptpath: Union[str, os.PathLike], strict: bool = True) -> str:
    """Resolve, read and load a checkpoint into ``model``.

    Args:
        model: the module to load into (modified in place).
        ckptpath: a URL or local path (see :func:`resolvecheckpoint`).
        strict: as for :func:`loadstatedict`.
    Returns:
        The local file used.
    Raises:
        The errors of :func:`resolvecheckpoint`, :func:`readstatedict` and :func:`loadstatedict`.
    """
    path = resolvecheckpoint(ckptpath)
    loadstatedict(model, readstatedict(path), strict=strict, source=path)
    return path
