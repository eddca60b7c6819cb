from .registry import buildfromregistry
