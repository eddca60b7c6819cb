"""Fine-tune configs: ``SEGMENTOR_CFG`` (the model, inherited from a model config through ``_base_``) and
``TRAIN_CFG`` (data, prompts, loss, optimizer, schedule, checkpoints), by bare name or path, with overrides.

Config files are executable Python: load only trusted ones.
"""
import copy
import os
from typing import Optional, Sequence, Union

from mmengine.config import Config

from ssseg.modules.utils.configs import availableconfigs, resolveconfigpath

FAMILY = os.path.join('samv2', 'finetune')
REQUIRED_TRAIN_KEYS = ('max_iters', 'batch_size', 'dataset', 'prompt_sampler', 'loss', 'optim_wrapper')


def availablefinetuneconfigs() -> list:
    """Bare names of the shipped fine-tune configs (e.g. 'samv21_hiera_tiny_davis'), sorted."""
    return availableconfigs(FAMILY)


def parsecfgoptions(options: Optional[Sequence[str]]) -> dict:
    """``['TRAIN_CFG.max_iters=10', 'TRAIN_CFG.freeze=[image_encoder]']`` -> {key: value} as mmengine's DictAction.

    Raises:
        ValueError: an item without ``=`` or with an empty key.
    """
    from mmengine.config import DictAction
    parsed = {}
    for item in options or []:
        key, sep, value = item.partition('=')
        if not sep or not key.strip():
            raise ValueError(f'--cfg-options items must be KEY=VALUE (e.g. TRAIN_CFG.max_iters=100), got {item!r}')
        parsed[key.strip()] = DictAction._parse_iterable(value)
    for key in parsed:
        if key.split('.')[0] not in ('SEGMENTOR_CFG', 'TRAIN_CFG'):
            raise ValueError(f'--cfg-options keys start with SEGMENTOR_CFG. or TRAIN_CFG., got {key!r}')
    return parsed


def loadfinetunecfg(name_or_path: Union[str, os.PathLike], options: Optional[dict] = None) -> dict:
    """Read a fine-tune config and apply ``options`` (dotted keys, as ``--cfg-options``).

    Args:
        name_or_path: a shipped fine-tune name (see :func:`availablefinetuneconfigs`) or a ``.py`` file.
        options: {dotted key: value}, e.g. {'TRAIN_CFG.max_iters': 10}.
    Returns:
        {'SEGMENTOR_CFG': dict, 'TRAIN_CFG': dict} (deep copies of plain dicts).
    Raises:
        ValueError: a file that does not load, lacks either dict or a required TRAIN_CFG key, or an option that
            does not apply; TypeError and FileNotFoundError from :func:`resolveconfigpath`.
    """
    path = resolveconfigpath(name_or_path, FAMILY)
    try:
        config = Config.fromfile(path)
    except Exception as err:  # the file is user code: any error while parsing or running it is a bad config
        raise ValueError(f'cfg={path!r}: the config file could not be loaded (it is run as Python): '
                         f'{type(err).__name__}: {err}') from err
    if options:
        try:
            config.merge_from_dict(options)
        except Exception as err:  # mmengine raises several types for a key that does not fit the config
            raise ValueError(f'cfg-options: {options} do not apply to {path!r}: {type(err).__name__}: {err}') from err
    cfg = config.to_dict()
    for name in ('SEGMENTOR_CFG', 'TRAIN_CFG'):
        if not isinstance(cfg.get(name), dict):
            raise ValueError(f'cfg={path!r}: a fine-tune config must define {name} (a dict); it defines '
                             f'{", ".join(sorted(map(str, cfg))) or "nothing"}')
    missing = [key for key in REQUIRED_TRAIN_KEYS if key not in cfg['TRAIN_CFG']]
    if missing:
        raise ValueError(f'cfg={path!r}: TRAIN_CFG lacks {missing} (inherit ssseg/configs/samv2/finetune/'
                         f'base_finetune_davis.py or base_finetune_coco.py)')
    return {'SEGMENTOR_CFG': copy.deepcopy(cfg['SEGMENTOR_CFG']), 'TRAIN_CFG': copy.deepcopy(cfg['TRAIN_CFG'])}
