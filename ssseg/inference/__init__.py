"""Command-line inference: ``python -m ssseg.inference {image,amg,video} ...`` (also the ``ssseg`` command)."""
from .cli import main

__all__ = ['main']
