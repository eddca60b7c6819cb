"""Registry helpers shared by every builder: one validated path from a config dict to a module."""
import copy

from mmengine.registry import Registry


def buildfromregistry(registry: Registry, cfg, argname: str = 'cfg'):
    """Build ``cfg['type']`` from ``registry`` with the remaining keys as keyword arguments.

    ``cfg`` is a plain dict (never modified); nested dicts stay dicts so that each module builds
    its own children. Unknown types and malformed configs raise errors naming the argument.
    """
    if not isinstance(cfg, dict):
        raise TypeError(f'{argname} must be a dict with a "type" key, got {type(cfg).__name__} {cfg!r:.80}')
    if 'type' not in cfg:
        raise ValueError(f'{argname} must have a "type" key naming a registered {registry.name}, got keys '
                         f'{sorted(map(str, cfg))}')
    cfg = copy.deepcopy(cfg)
    typename = cfg.pop('type')
    known = sorted(registry.module_dict)
    if isinstance(typename, str):
        try:
            builder = registry.get(typename) if typename else None
        except (RuntimeError, KeyError, ImportError) as err:  # mmengine's lookup of a "scope.Name" it cannot resolve
            raise ValueError(f'{argname}["type"]={typename!r} is not a registered {registry.name}; known: {known}') from err
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
