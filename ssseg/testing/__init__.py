"""Tools for tests and benchmarks: synthetic images and random-weight checkpoints in Meta's format.

The checkpoints are written by Meta's own ``sam2`` package (the parity oracle, ``pip install sam2==1.1.0``),
so that both implementations load the very same file; nothing here is needed to use ssseg.
"""
from .checkpoints import CHECKPOINT_NAMES, ORACLE_CONFIGS, buildoraclemodel, writerandomcheckpoint
from .images import syntheticimage
from .memory import reachablebytes
from .tiny import tinycfg, writetinyckpt

__all__ = ['CHECKPOINT_NAMES', 'ORACLE_CONFIGS', 'buildoraclemodel', 'reachablebytes', 'syntheticimage', 'tinycfg',
           'writerandomcheckpoint', 'writetinyckpt']
