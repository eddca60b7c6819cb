"""Config files: find one by its bare name or path and return its ``SEGMENTOR_CFG`` as a plain dict.

Config files are executable Python: load only trusted ones.
"""
import copy
import os

from mmengine.config import Config

CONFIGS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), 'configs')


def availableconfigs(family='samv2'):
    """Bare names of the config files shipped for ``family`` (e.g. 'samv21_hiera_tiny')."""
    folder = os.path.join(CONFIGS_DIR, family)
    return sorted(f[:-3] for f in os.listdir(folder) if f.endswith('.py') and '_hiera_' in f)


def resolveconfigpath(name_or_path, family='samv2'):
    """Map a bare config name (``samv21_hiera_tiny``) or a path to an existing ``.py`` file."""
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(f'cfg must be a config name or a path to a .py file, got {type(name_or_path).__name__}')
    name_or_path = os.fspath(name_or_path)
    if os.path.isfile(name_or_path):
        return name_or_path
    stem = os.path.splitext(os.path.basename(name_or_path))[0]
    shipped = os.path.join(CONFIGS_DIR, family, stem + '.py')
    if os.sep not in name_or_path and stem in availableconfigs(family):
        return shipped
    raise FileNotFoundError(f'cfg={name_or_path!r} is neither an existing file nor a known config name; '
                            f'known names: {", ".join(availableconfigs(family))}')


def loadsegmentorcfg(name_or_path, family='samv2'):
    """Return a deep copy of ``SEGMENTOR_CFG`` from a config file (by bare name or path) as plain dicts."""
    path = resolveconfigpath(name_or_path, family)
    cfg = Config.fromfile(path).to_dict()
    if 'SEGMENTOR_CFG' not in cfg:
        raise ValueError(f'config file {path} does not define SEGMENTOR_CFG')
    return copy.deepcopy(cfg['SEGMENTOR_CFG'])
