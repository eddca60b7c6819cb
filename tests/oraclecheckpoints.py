"""Random-weight checkpoints in Meta's official format, written by Meta's own ``sam2`` package.

Every float tensor is perturbed with seeded noise (plain init leaves many tensors constant, which
would hide bugs in the paths they feed), and the mask hypernetworks are scaled so mask logits have a
trained model's magnitude (about +-10), so thresholds and stability scores see realistic values.
"""
import os

import torch

# our config name -> the oracle's config
ORACLE_CONFIGS = {
    'samv2_hiera_tiny': 'configs/sam2/sam2_hiera_t.yaml', 'samv2_hiera_small': 'configs/sam2/sam2_hiera_s.yaml',
    'samv2_hiera_baseplus': 'configs/sam2/sam2_hiera_b+.yaml', 'samv2_hiera_large': 'configs/sam2/sam2_hiera_l.yaml',
    'samv21_hiera_tiny': 'configs/sam2.1/sam2.1_hiera_t.yaml', 'samv21_hiera_small': 'configs/sam2.1/sam2.1_hiera_s.yaml',
    'samv21_hiera_baseplus': 'configs/sam2.1/sam2.1_hiera_b+.yaml', 'samv21_hiera_large': 'configs/sam2.1/sam2.1_hiera_l.yaml',
}
# Meta's file name of each checkpoint (what torch.hub's cache holds)
CHECKPOINT_NAMES = {
    'samv2_hiera_tiny': 'sam2_hiera_tiny.pt', 'samv2_hiera_small': 'sam2_hiera_small.pt',
    'samv2_hiera_baseplus': 'sam2_hiera_base_plus.pt', 'samv2_hiera_large': 'sam2_hiera_large.pt',
    'samv21_hiera_tiny': 'sam2.1_hiera_tiny.pt', 'samv21_hiera_small': 'sam2.1_hiera_small.pt',
    'samv21_hiera_baseplus': 'sam2.1_hiera_base_plus.pt', 'samv21_hiera_large': 'sam2.1_hiera_large.pt',
}
HYPERNETWORK_GAIN = 40.0


def buildoraclemodel(name, ckptpath=None, **kwargs):
    from sam2.build_sam import build_sam2
    return build_sam2(ORACLE_CONFIGS[name], ckptpath, device='cpu', **kwargs)


def writecheckpoint(name, path, seed=0, **build_kwargs):
    """Write a perturbed random ``{'model': state_dict}`` for config ``name`` to ``path`` (atomically);
    ``build_kwargs`` go to Meta's builder (e.g. ``hydra_overrides_extra``)."""
    torch.manual_seed(seed)  # the oracle's own random init, so a checkpoint is the same in every run
    model = buildoraclemodel(name, apply_postprocessing=False, **build_kwargs)
    generator = torch.Generator().manual_seed(seed)
    state = model.state_dict()
    for key, tensor in state.items():
        if tensor.is_floating_point():
            tensor.add_(torch.randn(tensor.shape, generator=generator) * 0.02)
        if 'output_hypernetworks_mlps' in key and '.layers.2.' in key:
            tensor.mul_(HYPERNETWORK_GAIN)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f'{path}.tmp{os.getpid()}'
    torch.save({'model': state}, tmp)
    os.replace(tmp, path)
    return path
