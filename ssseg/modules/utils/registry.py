"""Registry helpers shared by every builder: one validated path from a config dict to a module."""
import copy
from typing import Any, Callable

from mmengine.registry import Registry


def buildfromregistry(registry: Registry, cfg: dict, argname: str = 'cfg') -> Any:
    """Build ``cfg['type']`` from ``registry`` with the remaining keys as keyword arguments.

    ``cfg`` is never modified; nested dicts stay dicts so that each module builds its own children.

    Args:
        registry: the mmengine Registry to look the type up in.
        cfg: a plain dict whose "type" is a registered name or a class (or other callable).
        argname: the argument's name in error messages.
    Returns:
        The built object.
    Raises:
        TypeError: a non-dict, a "type" that is neither a str nor callable, or the builder's TypeError
            (bad keyword arguments), naming the argument.
        ValueError: no "type" key, or an unknown type name (listing the known ones).
    """
    if not isinstance(cfg, dict):
        raise TypeError(f'{argname} must be a dict with a "type" key, got {type(cfg).__name__} {cfg!r:.80}')
    if 'type' not in cfg:
        raise ValueError(f'{argname} must have a "type" key naming a registered {registry.name}, got keys '
                         f'{sorted(map(str, cfg))}')
    cfg = copy.deepcopy(cfg)
    typename = cfg.pop('type')
    registry.import_from_location()  # the registry's own modules, whatever was imported before
    known = sorted(registry.module_dict)
    if isinstance(typename, str):
        try:
            builder = registry.get(typename) if typename else None
        except (RuntimeError, KeyError, ImportError) as err:  # mmengine's lookup of a "scope.Name" it cannot resolve
            raise ValueError(f'{argname}["type"]={typename!r} is not a registered {registry.name}; '
                             f'known: {known}') from err
        if builder is None:
            raise ValueError(f'{argname}["type"]={typename!r} is not a registered {registry.name}; known: {known}')
    elif callable(typename):
        builder = typename
    else:
        raise TypeError(f'{argname}["type"] must be a registered name (one of {known}) or a class, got '
                        f'{type(typename).__name__} {typename!r:.80}')
    try:
        return builder(**cfg)
    except TypeError as err:
        raise TypeError(f'{argname} (type {getattr(builder, "__name__", builder)}): {err}') from err


def makebuilder(name: str, registry: Registry, argname: str) -> Callable[[dict], Any]:
    """A public builder function for one registry.

    Args:
        name: the function's name, e.g. 'BuildSegmentor'.
        registry: the registry it builds from.
        argname: the argument named in its errors, e.g. 'segmentor_cfg'.
    Returns:
        ``build(cfg)``, which is ``buildfromregistry(registry, cfg, argname)``.
    """
    def build(cfg: dict) -> Any:
        return buildfromregistry(registry, cfg, argname)
    build.__name__ = build.__qualname__ = name
    build.__doc__ = (f'Build a {registry.name} from a config dict: ``cfg["type"]`` names a registered {registry.name}, '
                     f'the other keys are its keyword arguments. Errors name ``{argname}``.')
    return build
