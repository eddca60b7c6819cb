"""Shared helpers for module-level parity tests against Meta's sam2 modules."""
import contextlib

import torch


def perturbed(module, seed, scale=0.05):
    """Add seeded noise to every float tensor of the state dict so no parameter keeps its init value."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in module.state_dict().values():
            if tensor.is_floating_point():
                tensor.add_(scale * torch.randn(tensor.shape, generator=generator))
    return module.eval()


def assertclose(ours, theirs, rtol=1e-4):
    """Max abs error within ``rtol`` of the output scale (at least 1)."""
    assert ours.shape == theirs.shape, f'shape {tuple(ours.shape)} != {tuple(theirs.shape)}'
    if theirs.numel() == 0:
        return
    error = (ours - theirs).abs().max().item()
    assert error <= rtol * max(1.0, theirs.abs().max().item()), f'max abs error {error:.3g}'


@contextlib.contextmanager
def temporaryattributes(objects, **values):
    """Set the same attributes on every object (ours and Meta's) for the duration of a block."""
    saved = [{key: getattr(obj, key) for key in values} for obj in objects]
    for obj in objects:
        for key, value in values.items():
            setattr(obj, key, value)
    try:
        yield
    finally:
        for obj, old in zip(objects, saved):
            for key, value in old.items():
                setattr(obj, key, value)
