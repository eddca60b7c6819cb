"""Config files: find one by its bare name or path and return its ``SEGMENTOR_CFG`` as a plain dict.

Config files are executable Python: load only trusted ones.
"""
import copy
import os
from typing import Union

from mmengine.config import Config

CONFIGS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), 'configs')


def availableconfigs(family: str = 'samv2') -> list:
    """Bare names of the config files shipped for ``family``.

    Args:
        family: the folder of ``ssseg/configs`` to list.
    Returns:
        The sorted names (str), e.g. 'samv21_hiera_tiny'.
    """
    folder = os.path.join(CONFIGS_DIR, family)
    return sorted(f[:-3] for f in os.listdir(folder) if f.endswith('.py') and '_hiera_' in f)


def resolveconfigpath(name_or_path: Union[str, os.PathLike], family: str = 'samv2') -> str:
    """Map a bare config name (``samv21_hiera_tiny``) or a path to an existing ``.py`` file.

    Args:
        name_or_path: a shipped name of ``family`` or a path to a ``.py`` file.
        family: the folder of ``ssseg/configs`` the names come from.
    Returns:
        The path of the file.
    Raises:
        TypeError: a non-str; ValueError: an existing file that is not ``.py``; FileNotFoundError: anything else
            (listing the shipped names).
    """
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(f'cfg must be a config name or a path to a .py file, got {type(name_or_path).__name__} '
                        f'{name_or_path!r:.80}')
    name_or_path = os.fspath(name_or_path)
    if os.path.isfile(name_or_path):
        if not name_or_path.endswith('.py'):
            raise ValueError(f'cfg must be a config name or a path to a .py file, got the file {name_or_path!r} '
                             f'(not .py)')
        return name_or_path
    stem = os.path.splitext(os.path.basename(name_or_path))[0]
    shipped = os.path.join(CONFIGS_DIR, family, stem + '.py')
    if os.sep not in name_or_path and stem in availableconfigs(family):
        return shipped
    raise FileNotFoundError(f'cfg={name_or_path!r} is neither an existing file nor a known config name; '
                            f'known names: {", ".join(availableconfigs(family))}')


def loadsegmentorcfg(name_or_path: Union[str, os.PathLike], family: str = 'samv2') -> dict:
    """Return a deep copy of ``SEGMENTOR_CFG`` from a config file (by bare name or path) as plain dicts.

    The file is executed as Python.

    Args:
        name_or_path: as for :func:`resolveconfigpath`.
        family: as for :func:`resolveconfigpath`.
    Returns:
        The ``SEGMENTOR_CFG`` dict.
    Raises:
        ValueError: a file that does not parse or raises while running (naming it; the original error is its
            ``__cause__``), or a file without ``SEGMENTOR_CFG``.
        TypeError: a ``SEGMENTOR_CFG`` that is not a dict; and :func:`resolveconfigpath`'s errors.
    """
    path = resolveconfigpath(name_or_path, family)
    try:
        cfg = Config.fromfile(path).to_dict()
    except Exception as err:  # the file is user code: any error while parsing or running it is a bad config
        raise ValueError(f'cfg={path!r}: the config file could not be loaded (it is run as Python): '
                         f'{type(err).__name__}: {err}') from err
    if 'SEGMENTOR_CFG' not in cfg:
        raise ValueError(f'cfg={path!r}: the config file must define SEGMENTOR_CFG, a dict; it defines '
                         f'{", ".join(sorted(map(str, cfg))) or "nothing"}')
    if not isinstance(cfg['SEGMENTOR_CFG'], dict):
        raise TypeError(f'cfg={path!r}: SEGMENTOR_CFG must be a dict, got '
                        f'{type(cfg["SEGMENTOR_CFG"]).__name__} {cfg["SEGMENTOR_CFG"]!r:.80}')
    return copy.deepcopy(cfg['SEGMENTOR_CFG'])
