"""Shared pieces of the fine-tuning tests: a tiny SAMV2 that Meta's ``build_sam2`` can build too, and its overrides.

``ssseg.testing.tinycfg`` narrows the mask decoder (32-wide IoU head, 2 heads, 64-wide MLP), which Meta's SAM2Base
hard-codes (256, 8, 2048), and puts global attention on the trunk's q-pooling block, which Meta's Hiera cannot run;
:func:`metatinycfg` keeps Meta's widths and moves global attention one block on, so the same state dict loads
strictly on both sides and runs alike, and :data:`META_TINY_OVERRIDES` makes Meta's SAM 2.1 tiny config that model.
"""
import os
import subprocess
import sys

from ssseg.testing.tiny import tinycfg

META_TINY_CONFIG = 'configs/sam2.1/sam2.1_hiera_t.yaml'
_TRUNK = '++model.image_encoder.trunk.'
_NECK = '++model.image_encoder.neck.'
_ATTN = '++model.memory_attention.'
_MEM = '++model.memory_encoder.'
META_TINY_OVERRIDES = [
    '++model.image_size=128', f'{_TRUNK}embed_dim=8', f'{_TRUNK}num_heads=1', f'{_TRUNK}stages=[1,1,2,1]',
    f'{_TRUNK}global_att_blocks=[3]', f'{_TRUNK}window_spec=[4,4,2,2]',
    f'{_TRUNK}window_pos_embed_bkg_spatial_size=[4,4]',
    f'{_NECK}d_model=32', f'{_NECK}backbone_channel_list=[64,32,16,8]', f'{_NECK}position_encoding.num_pos_feats=32',
    f'{_ATTN}d_model=32', f'{_ATTN}num_layers=1', f'{_ATTN}layer.d_model=32', f'{_ATTN}layer.dim_feedforward=64',
    f'{_ATTN}layer.self_attention.embedding_dim=32', f'{_ATTN}layer.self_attention.feat_sizes=[8,8]',
    f'{_ATTN}layer.cross_attention.embedding_dim=32', f'{_ATTN}layer.cross_attention.feat_sizes=[8,8]',
    f'{_ATTN}layer.cross_attention.kv_in_dim=16', f'{_MEM}out_dim=16', f'{_MEM}in_dim=32',
    f'{_MEM}position_encoding.num_pos_feats=16', f'{_MEM}mask_downsampler.embed_dim=32', f'{_MEM}fuser.layer.dim=32',
]
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def metatinycfg() -> dict:
    """The tiny SAMV2 config (random weights, no checkpoint) with the mask decoder widths Meta hard-codes."""
    cfg = tinycfg('2.1')
    # global attention off the q-pooling block: Meta's Hiera cannot pool queries in a global-attention block
    cfg['image_encoder']['trunk']['global_att_blocks'] = [3]
    cfg['mask_decoder']['iou_head_hidden_dim'] = 256
    cfg['mask_decoder']['transformer'].update(mlp_dim=2048, num_heads=8)
    cfg.pop('ckptpath', None)
    return cfg


def buildmetatiny(ckptpath=None, **kwargs):
    """Meta's SAM2Base of :func:`metatinycfg` (``build_sam2`` loads ``ckptpath`` strictly)."""
    from sam2.build_sam import build_sam2
    kwargs.setdefault('apply_postprocessing', False)
    return build_sam2(META_TINY_CONFIG, ckptpath, device='cpu', hydra_overrides_extra=list(META_TINY_OVERRIDES),
                      **kwargs)


def writetinytrainconfig(folder, base='samv21_hiera_tiny_davis', ckptpath=None, **train) -> str:
    """A fine-tune config file inheriting the shipped ``base`` with :func:`metatinycfg`'s model and ``train`` keys.

    Args:
        folder: where to write ``tiny_<base>.py``.
        base: a shipped fine-tune config name.
        ckptpath: the checkpoint the run starts from (None: random weights).
        train: TRAIN_CFG keys to set (merged into the base's dict by mmengine).
    Returns:
        The file's path.
    """
    cfg = metatinycfg()
    cfg['ckptpath'] = None if ckptpath is None else os.fspath(ckptpath)
    path = os.path.join(folder, f'tiny_{base}.py')
    basepath = os.path.join(REPO, 'ssseg', 'configs', 'samv2', 'finetune', f'{base}.py')
    with open(path, 'w', encoding='utf-8') as file:
        file.write(f'_base_ = [{basepath!r}]\n')
        file.write(f'SEGMENTOR_CFG = dict(_delete_=True, **{cfg!r})\n')
        file.write(f'TRAIN_CFG = dict(**{train!r})\n')
    return path


def runssseg(args, env=None, timeout=240):
    """``python -m ssseg.inference ARGS`` in a fresh process -> CompletedProcess (text)."""
    environment = dict(os.environ, OMP_NUM_THREADS='1', **(env or {}))
    return subprocess.run([sys.executable, '-m', 'ssseg.inference', *args], capture_output=True, text=True,
                          cwd=REPO, env=environment, timeout=timeout)
