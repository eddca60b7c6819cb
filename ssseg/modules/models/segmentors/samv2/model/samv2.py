"""SAMV2: the SAM 2 / SAM 2.1 model assembled from config sub-dicts.

Parameter names follow Meta's published checkpoints (``image_encoder.*``, ``sam_prompt_encoder.*``,
``sam_mask_decoder.*``, ``memory_attention.*``, ``memory_encoder.*``, ``maskmem_tpos_enc``, ...), so an
official ``{'model': state_dict}`` loads strictly and unconverted. The model takes and returns tensors
only; images, prompts, files and per-video state belong to the predictors.
"""
import dataclasses
from typing import List, NoReturn, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.init import trunc_normal_

from ssseg.modules.models.bricks.layers import MLP
from ssseg.modules.models.registries import SEGMENTORS, BuildBackbone, BuildHead, BuildTransformer
from ssseg.modules.utils.checkpoints import loadpretrained

from .compiled import compilemodules
from .options import SAMV2Options
from .precision import inmodelprecision
from .trackstep import SAMV2TrackingMixin
from .trainforward import SAMV2TrainingMixin

# logit given to every pixel of an object predicted absent from the frame
NO_OBJ_SCORE = -1024.0


def _filledcfg(cfg, argname, derived):
    """Copy ``cfg`` and fill values the model derives itself; a conflicting user value is an error."""
    if not isinstance(cfg, dict):
        raise TypeError(f'{argname} must be a dict with a "type" key, got {type(cfg).__name__}')
    cfg = dict(cfg)
    for key, value in derived.items():
        if key in cfg and cfg[key] != value:
            raise ValueError(f'{argname}[{key!r}] must be {value!r} to match the model, got {cfg[key]!r}')
        cfg[key] = value
    return cfg


def _learned(*shape):
    """A parameter initialized as Meta's (truncated normal, std 0.02)."""
    param = nn.Parameter(torch.zeros(*shape))
    trunc_normal_(param, std=0.02)
    return param


@SEGMENTORS.register_module()
class SAMV2(SAMV2TrainingMixin, SAMV2TrackingMixin, nn.Module):
    """Segment Anything 2: Hiera image encoder, SAM prompt encoder and mask decoder, and a memory bank.

    Args:
        image_encoder, memory_attention, memory_encoder, prompt_encoder, mask_decoder: config dicts of
            the sub-modules. Values the prompt encoder and mask decoder share with the model (feature
            width, image size, object-score and high-res switches) are filled in from the model's options.
        ckptpath: Meta's checkpoint (URL or local path), loaded by :meth:`loadckpt`, not at construction.
        **options: the flat options of :class:`SAMV2Options` (Meta's ``SAM2Base`` names), kept as
            attributes of the same names.

    Raises:
        TypeError: an unknown option, or a sub-module config that is not a dict.
        ValueError: inconsistent options, or a prompt encoder / mask decoder config value that conflicts with
            the one the model derives.
    """

    def __init__(self, image_encoder: dict, memory_attention: dict, memory_encoder: dict, prompt_encoder: dict,
                 mask_decoder: dict, ckptpath=None, **options):
        super().__init__()
        # plain attributes of Meta's names: the tracking step and Meta-style code read them
        self.__dict__.update(dataclasses.asdict(SAMV2Options.fromkwargs(options)))
        self.ckptpath = ckptpath
        # the order of the parts fixes what a seeded random initialization gives (tests' tiny checkpoints)
        self._buildimageencoder(image_encoder)
        self._buildmemory(memory_attention, memory_encoder)
        self._buildobjectpresence()
        self._buildsamheads(prompt_encoder, mask_decoder)
        self._buildobjectpointers()
        if self.compile_modules:
            compilemodules(self)

    def _buildimageencoder(self, image_encoder):
        self.image_encoder = BuildBackbone(image_encoder)
        self.hidden_dim = self.image_encoder.neck.d_model
        self.num_feature_levels = 3 if self.use_high_res_features_in_sam else 1

    def _buildmemory(self, memory_attention, memory_encoder):
        self.memory_attention = BuildTransformer(memory_attention)
        self.memory_encoder = BuildHead(memory_encoder)
        out_proj = getattr(self.memory_encoder, 'out_proj', None)
        self.mem_dim = out_proj.weight.shape[0] if hasattr(out_proj, 'weight') else self.hidden_dim
        self.maskmem_tpos_enc = _learned(self.num_maskmem, 1, 1, self.mem_dim)
        self.no_mem_embed = _learned(1, 1, self.hidden_dim)
        self.no_mem_pos_enc = _learned(1, 1, self.hidden_dim)

    def _buildobjectpresence(self):
        if self.use_obj_ptrs_in_encoder:
            # brings a full-resolution mask prompt to the stride-4 logit grid of the decoder
            self.mask_downsample = nn.Conv2d(1, 1, kernel_size=4, stride=4)
        if self.pred_obj_scores and self.use_obj_ptrs_in_encoder:
            self.no_obj_ptr = _learned(1, self.hidden_dim)
        self.no_obj_embed_spatial = _learned(1, self.mem_dim) if self.no_obj_embed_spatial else None

    def _buildsamheads(self, prompt_encoder, mask_decoder):
        embed_size = self.image_size // self.backbone_stride
        self.sam_prompt_embed_dim = self.hidden_dim
        self.sam_image_embedding_size = embed_size
        self.sam_prompt_encoder = BuildHead(_filledcfg(prompt_encoder, 'prompt_encoder', {
            'embed_dim': self.hidden_dim, 'image_embedding_size': (embed_size, embed_size),
            'input_image_size': (self.image_size, self.image_size),
        }))
        self.sam_mask_decoder = BuildHead(_filledcfg(mask_decoder, 'mask_decoder', {
            'transformer_dim': self.hidden_dim, 'use_high_res_features': self.use_high_res_features_in_sam,
            'iou_prediction_use_sigmoid': self.iou_prediction_use_sigmoid, 'pred_obj_scores': self.pred_obj_scores,
            'pred_obj_scores_mlp': self.pred_obj_scores_mlp,
            'use_multimask_token_for_obj_ptr': self.use_multimask_token_for_obj_ptr,
        }))

    def _buildobjectpointers(self):
        dim = self.hidden_dim
        if self.use_obj_ptrs_in_encoder:
            self.obj_ptr_proj = MLP(dim, dim, dim, 3) if self.use_mlp_for_obj_ptr_proj else nn.Linear(dim, dim)
        else:
            self.obj_ptr_proj = nn.Identity()
        # keeps the temporal encoding of object pointers apart from the spatial one
        self.obj_ptr_tpos_proj = nn.Linear(dim, self.mem_dim) if self.proj_tpos_enc_in_obj_ptrs else nn.Identity()

    @property
    def device(self) -> torch.device:
        """The device the model runs on.

        Returns:
            The device of the model's (first) parameter.
        """
        return next(self.parameters()).device

    def forward(self, *args, **kwargs) -> NoReturn:
        """Not a model entry point: the predictors call the methods below.

        Raises:
            NotImplementedError: always.
        """
        raise NotImplementedError('SAMV2 is driven by SAMV2ImagePredictor, SAMV2AutomaticMaskGenerator or '
                                  'SAMV2VideoPredictor')

    def loadckpt(self, ckptpath: Optional[str] = None, strict: bool = True) -> 'SAMV2':
        """Load Meta's checkpoint (URL through torch.hub's cache, or a local path); defaults to the config's.

        Args:
            ckptpath: URL or local path of the checkpoint; None means the config's ``ckptpath``.
            strict: refuse missing or unexpected keys.

        Returns:
            The model itself.

        Raises:
            ValueError: neither ``ckptpath`` nor the config's is given.
        """
        ckptpath = self.ckptpath if ckptpath is None else ckptpath
        if ckptpath is None:
            raise ValueError('ckptpath is None: pass a URL or local path, or build from a config with "ckptpath"')
        loadpretrained(self, ckptpath, strict=strict)
        return self

    # ------------------------------------------------------------------ image features
    @inmodelprecision
    def forwardimage(self, images: torch.Tensor) -> dict:
        """Run the image encoder on (B, 3, S, S) normalized images (S = image_size).

        Args:
            images: (B, 3, S, S) floating normalized images.

        Returns:
            The encoder's dict: ``vision_features`` (B, C, S/16, S/16), ``vision_pos_enc`` and ``backbone_fpn``
            lists of (B, C, h_i, w_i) maps (highest resolution first). With high-res features in SAM, the two
            finest FPN levels are already projected by the decoder's ``conv_s0``/``conv_s1`` so that repeated
            prompts on one image do not redo it.
        """
        backbone_out = self.image_encoder(images)
        if self.use_high_res_features_in_sam:
            fpn = list(backbone_out['backbone_fpn'])
            fpn[0] = self.sam_mask_decoder.conv_s0(fpn[0])
            fpn[1] = self.sam_mask_decoder.conv_s1(fpn[1])
            backbone_out['backbone_fpn'] = fpn
        return backbone_out

    def preparebackbonefeatures(self, backbone_out: dict
                                ) -> Tuple[List[torch.Tensor], List[torch.Tensor], List[Tuple[int, int]]]:
        """Flatten the last ``num_feature_levels`` maps to sequence-first (HW, B, C) tensors.

        Args:
            backbone_out: dict from :meth:`forwardimage` (``backbone_fpn``, ``vision_pos_enc``).

        Returns:
            ``(vision_feats, vision_pos_embeds, feat_sizes)``, lowest level last: lists of (h*w, B, C_l) features,
            of (h*w, B, C) position encodings (row-major tokens) and of the levels' (h, w).
        """
        maps = backbone_out['backbone_fpn'][-self.num_feature_levels:]
        pos = backbone_out['vision_pos_enc'][-self.num_feature_levels:]
        feat_sizes = [(x.shape[-2], x.shape[-1]) for x in pos]
        vision_feats = [x.flatten(2).permute(2, 0, 1) for x in maps]
        vision_pos_embeds = [x.flatten(2).permute(2, 0, 1) for x in pos]
        return vision_feats, vision_pos_embeds, feat_sizes

    def encodeimage(self, images: torch.Tensor) -> dict:
        """Image features for prompting without memory: (B, 3, S, S) -> dict.

        Args:
            images: (B, 3, S, S) floating normalized images.

        Returns:
            Dict: ``image_embed`` (B, C, S/16, S/16), the lowest level (with the no-memory embedding added when
            ``directly_add_no_mem_embed``); ``high_res_feats`` [(B, C/8, S/4, S/4), (B, C/4, S/8, S/8)] (empty
            without high-res features).
        """
        backbone_out = self.forwardimage(images)
        maps = backbone_out['backbone_fpn'][-self.num_feature_levels:]
        image_embed = maps[-1]
        if self.directly_add_no_mem_embed:
            image_embed = image_embed + self.no_mem_embed.view(1, -1, 1, 1)
        return {'image_embed': image_embed, 'high_res_feats': list(maps[:-1])}

    # ------------------------------------------------------------------ SAM heads
    @inmodelprecision
    def decodeprompts(self, image_embed: torch.Tensor, high_res_feats: List[torch.Tensor],
                      points: Optional[Tuple[torch.Tensor, torch.Tensor]] = None,
                      mask_input: Optional[torch.Tensor] = None, multimask_output: bool = True,
                      repeat_image: bool = False, min_iou: Optional[float] = None) -> Tuple[torch.Tensor, ...]:
        """Prompt encoder + mask decoder on one image's (or a batch's) features.

        Args:
            image_embed: (N, C, S/16, S/16), or (1, C, S/16, S/16) with ``repeat_image``, as from :meth:`encodeimage`.
            high_res_feats: :meth:`encodeimage`'s ``high_res_feats`` (an empty list without high-res features).
            points: None or (coords (N, P, 2) in the model's input frame (pixels of the S x S image), labels
                (N, P) int32 with 1 positive, 0 negative, 2/3 box corners, -1 padding).
            mask_input: None or (N, 1, S/4, S/4) logits.
            multimask_output: decode M = 3 candidates per prompt instead of 1.
            repeat_image: the single image's features serve N prompts.
            min_iou: None, or decode only the masks whose predicted IoU exceeds it.

        Returns:
            ``(low_res_masks (N, M, S/4, S/4) logits, iou_predictions (N, M))``, M = 3 or 1. With ``min_iou``:
            ``(masks (K, S/4, S/4), ious (K,), index (K, 2))``, ``index`` giving each one's (prompt, output) position.
        """
        sparse, dense = self.sam_prompt_encoder(points=points, boxes=None, masks=mask_input)
        decoder_args = dict(
            image_embeddings=image_embed, image_pe=self.sam_prompt_encoder.getdensepe(),
            sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense, multimask_output=multimask_output,
            repeat_image=repeat_image, high_res_features=high_res_feats if high_res_feats else None,
        )
        if min_iou is not None:
            return self.sam_mask_decoder.decodeconfident(min_iou=min_iou, **decoder_args)
        low_res_masks, iou_predictions, _, _ = self.sam_mask_decoder(**decoder_args)
        return low_res_masks, iou_predictions

    def forwardsamheads(self, backbone_features: torch.Tensor, point_inputs: Optional[dict] = None,
                        mask_inputs: Optional[torch.Tensor] = None, high_res_features: Optional[list] = None,
                        multimask_output: bool = False) -> Tuple[torch.Tensor, ...]:
        """Decode masks and an object pointer for B objects from memory-conditioned features.

        Args:
            backbone_features: (B, C, S/16, S/16) memory-conditioned features.
            point_inputs: None or dict(point_coords (B, P, 2) pixels of the S x S input, point_labels (B, P) int32).
            mask_inputs: None or (B, 1, h, w) float/bool mask, resized to the prompt encoder's mask size if needed.
            high_res_features, multimask_output: for the decoder; with multimask the single masks are the best-IoU ones.
        Returns:
            (low_res_multimasks (B, M, S/4, S/4), high_res_multimasks (B, M, S, S), ious (B, M), low_res_masks (B, 1,
            S/4, S/4), high_res_masks (B, 1, S, S), obj_ptr (B, C), object_score_logits (B, 1)); masks float32.
        Raises:
            ValueError: backbone_features not (B, C, S/16, S/16)."""
        batch_size, device = backbone_features.size(0), backbone_features.device
        expected = (self.sam_prompt_embed_dim, self.sam_image_embedding_size, self.sam_image_embedding_size)
        if tuple(backbone_features.shape[1:]) != expected:
            raise ValueError(f'backbone_features must be (B, {expected[0]}, {expected[1]}, {expected[2]}), '
                             f'got {tuple(backbone_features.shape)}')
        sparse, dense = self._encodetrackingprompts(batch_size, device, point_inputs, mask_inputs)
        low_res_multimasks, ious, sam_output_tokens, object_score_logits = self.sam_mask_decoder(
            image_embeddings=backbone_features, image_pe=self.sam_prompt_encoder.getdensepe(),
            sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense, multimask_output=multimask_output,
            repeat_image=False, high_res_features=high_res_features,
        )
        if self.pred_obj_scores:
            is_obj_appearing = object_score_logits > 0
            # an absent object gets a hard empty mask, as the memory will see it
            low_res_multimasks = torch.where(is_obj_appearing[:, None, None], low_res_multimasks, NO_OBJ_SCORE)
        low_res_multimasks = low_res_multimasks.float()
        high_res_multimasks = F.interpolate(low_res_multimasks, size=(self.image_size, self.image_size),
                                            mode='bilinear', align_corners=False)
        sam_output_token = sam_output_tokens[:, 0]
        if multimask_output:
            best = torch.argmax(ious, dim=-1)
            rows = torch.arange(batch_size, device=device)
            low_res_masks = low_res_multimasks[rows, best].unsqueeze(1)
            high_res_masks = high_res_multimasks[rows, best].unsqueeze(1)
            if sam_output_tokens.size(1) > 1:
                sam_output_token = sam_output_tokens[rows, best]
        else:
            low_res_masks, high_res_masks = low_res_multimasks, high_res_multimasks
        obj_ptr = self.obj_ptr_proj(sam_output_token)
        if self.pred_obj_scores:
            appearing = object_score_logits.sigmoid() if self.soft_no_obj_ptr else is_obj_appearing.float()
            obj_ptr = self._withnoobjptr(obj_ptr, appearing)
        return (low_res_multimasks, high_res_multimasks, ious, low_res_masks, high_res_masks, obj_ptr,
                object_score_logits)

    def _encodetrackingprompts(self, batch_size, device, point_inputs, mask_inputs):
        """Prompt embeddings of B objects: their clicks (or one padding point each) and mask prompts (resized)."""
        if point_inputs is not None:
            coords, labels = point_inputs['point_coords'], point_inputs['point_labels']
        else:
            # an empty prompt is a single padding point
            coords = torch.zeros(batch_size, 1, 2, device=device)
            labels = -torch.ones(batch_size, 1, dtype=torch.int32, device=device)
        mask_prompt = None
        if mask_inputs is not None:
            mask_size = tuple(self.sam_prompt_encoder.mask_input_size)
            mask_prompt = mask_inputs
            if tuple(mask_inputs.shape[-2:]) != mask_size:
                mask_prompt = F.interpolate(mask_inputs.float(), size=mask_size, mode='bilinear',
                                            align_corners=False, antialias=True)
        return self.sam_prompt_encoder(points=(coords, labels), boxes=None, masks=mask_prompt)

    def _withnoobjptr(self, obj_ptr, appearing):
        """Object pointers (B, C) of objects present with weight ``appearing`` (B, 1) in [0, 1]; the absent
        part moves to the learned ``no_obj_ptr``."""
        if self.fixed_no_obj_ptr:
            obj_ptr = appearing * obj_ptr
        return obj_ptr + (1 - appearing) * self.no_obj_ptr
