"""Utilities below every model and predictor: registries, checkpoints, configs, checks, files, RLE, the CPU heap."""
from .checkpoints import loadpretrained, loadstatedict, readstatedict, resolvecheckpoint
from .configs import availableconfigs, loadsegmentorcfg, resolveconfigpath
from .registry import buildfromregistry

__all__ = ['loadpretrained', 'loadstatedict', 'readstatedict', 'resolvecheckpoint', 'availableconfigs',
           'loadsegmentorcfg', 'resolveconfigpath', 'buildfromregistry']
