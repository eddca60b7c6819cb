"""SAMV2: the SAM 2 / SAM 2.1 model assembled from config sub-dicts.

Parameter names follow Meta's published checkpoints (``image_encoder.*``, ``sam_prompt_encoder.*``,
``sam_mask_decoder.*``, ``memory_attention.*``, ``memory_encoder.*``, ``maskmem_tpos_enc``, ...), so an
official ``{'model': state_dict}`` loads strictly and unconverted.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.init import trunc_normal_

from ..builder import SEGMENTORS
from ...backbones import BuildBackbone
from ...bricks import MLP, BuildHead, BuildTransformer
from ....utils.checkpoints import loadpretrained
from ....utils.heap import keepheap
from .precision import inmodelprecision
from .trackstep import SAMV2TrackingMixin

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


@SEGMENTORS.register_module()
class SAMV2(SAMV2TrackingMixin, nn.Module):
    """Segment Anything 2: Hiera image encoder, SAM prompt encoder and mask decoder, and a memory bank.

    Sub-modules are given as config dicts. Options the mask decoder and prompt encoder share with the
    model (feature width, image size, object-score and high-res switches) are stated once here and
    passed down. ``ckptpath`` is remembered for :meth:`loadckpt` but not loaded at construction.
    """

    def __init__(self, image_encoder, memory_attention, memory_encoder, prompt_encoder, mask_decoder,
                 num_maskmem=7, image_size=1024, backbone_stride=16, sigmoid_scale_for_mem_enc=1.0,
                 sigmoid_bias_for_mem_enc=0.0, binarize_mask_from_pts_for_mem_enc=False,
                 use_mask_input_as_output_without_sam=False, max_cond_frames_in_attn=-1,
                 directly_add_no_mem_embed=False, use_high_res_features_in_sam=False,
                 multimask_output_in_sam=False, multimask_min_pt_num=1, multimask_max_pt_num=1,
                 multimask_output_for_tracking=False, use_multimask_token_for_obj_ptr=False,
                 iou_prediction_use_sigmoid=False, memory_temporal_stride_for_eval=1,
                 non_overlap_masks_for_mem_enc=False, use_obj_ptrs_in_encoder=False, max_obj_ptrs_in_encoder=16,
                 add_tpos_enc_to_obj_ptrs=True, proj_tpos_enc_in_obj_ptrs=False,
                 use_signed_tpos_enc_to_obj_ptrs=False, only_obj_ptrs_in_the_past_for_eval=False,
                 pred_obj_scores=False, pred_obj_scores_mlp=False, fixed_no_obj_ptr=False, soft_no_obj_ptr=False,
                 use_mlp_for_obj_ptr_proj=False, no_obj_embed_spatial=False, ckptpath=None):
        super().__init__()
        if proj_tpos_enc_in_obj_ptrs and not add_tpos_enc_to_obj_ptrs:
            raise ValueError('proj_tpos_enc_in_obj_ptrs=True needs add_tpos_enc_to_obj_ptrs=True')
        if fixed_no_obj_ptr and not (pred_obj_scores and use_obj_ptrs_in_encoder):
            raise ValueError('fixed_no_obj_ptr=True needs pred_obj_scores=True and use_obj_ptrs_in_encoder=True')
        if image_size % backbone_stride != 0:
            raise ValueError(f'image_size must be a multiple of backbone_stride={backbone_stride}, got {image_size}')
        self.ckptpath = ckptpath
        # 'bfloat16' runs the decorated entry points under autocast (set by the predictors, never the default)
        self.precision = 'float32'
        # image encoder: Hiera trunk + FPN neck
        self.image_encoder = BuildBackbone(image_encoder)
        self.hidden_dim = self.image_encoder.neck.d_model
        self.use_high_res_features_in_sam = use_high_res_features_in_sam
        self.num_feature_levels = 3 if use_high_res_features_in_sam else 1
        self.image_size = image_size
        self.backbone_stride = backbone_stride
        # memory attention and memory encoder
        self.memory_attention = BuildTransformer(memory_attention)
        self.memory_encoder = BuildHead(memory_encoder)
        out_proj = getattr(self.memory_encoder, 'out_proj', None)
        self.mem_dim = out_proj.weight.shape[0] if hasattr(out_proj, 'weight') else self.hidden_dim
        self.num_maskmem = num_maskmem
        self.maskmem_tpos_enc = nn.Parameter(torch.zeros(num_maskmem, 1, 1, self.mem_dim))
        self.no_mem_embed = nn.Parameter(torch.zeros(1, 1, self.hidden_dim))
        self.no_mem_pos_enc = nn.Parameter(torch.zeros(1, 1, self.hidden_dim))
        for param in (self.maskmem_tpos_enc, self.no_mem_embed, self.no_mem_pos_enc):
            trunc_normal_(param, std=0.02)
        # tracking options (used by the video predictor)
        self.directly_add_no_mem_embed = directly_add_no_mem_embed
        self.sigmoid_scale_for_mem_enc = sigmoid_scale_for_mem_enc
        self.sigmoid_bias_for_mem_enc = sigmoid_bias_for_mem_enc
        self.binarize_mask_from_pts_for_mem_enc = binarize_mask_from_pts_for_mem_enc
        self.non_overlap_masks_for_mem_enc = non_overlap_masks_for_mem_enc
        self.memory_temporal_stride_for_eval = memory_temporal_stride_for_eval
        self.use_mask_input_as_output_without_sam = use_mask_input_as_output_without_sam
        self.max_cond_frames_in_attn = max_cond_frames_in_attn
        self.multimask_output_in_sam = multimask_output_in_sam
        self.multimask_min_pt_num = multimask_min_pt_num
        self.multimask_max_pt_num = multimask_max_pt_num
        self.multimask_output_for_tracking = multimask_output_for_tracking
        self.use_multimask_token_for_obj_ptr = use_multimask_token_for_obj_ptr
        self.iou_prediction_use_sigmoid = iou_prediction_use_sigmoid
        self.use_obj_ptrs_in_encoder = use_obj_ptrs_in_encoder
        self.max_obj_ptrs_in_encoder = max_obj_ptrs_in_encoder
        self.add_tpos_enc_to_obj_ptrs = add_tpos_enc_to_obj_ptrs
        self.proj_tpos_enc_in_obj_ptrs = proj_tpos_enc_in_obj_ptrs
        self.use_signed_tpos_enc_to_obj_ptrs = use_signed_tpos_enc_to_obj_ptrs
        self.only_obj_ptrs_in_the_past_for_eval = only_obj_ptrs_in_the_past_for_eval
        self.pred_obj_scores = pred_obj_scores
        self.pred_obj_scores_mlp = pred_obj_scores_mlp
        self.fixed_no_obj_ptr = fixed_no_obj_ptr
        self.soft_no_obj_ptr = soft_no_obj_ptr
        self.use_mlp_for_obj_ptr_proj = use_mlp_for_obj_ptr_proj
        if use_obj_ptrs_in_encoder:
            # brings a full-resolution mask prompt to the stride-4 logit grid of the decoder
            self.mask_downsample = nn.Conv2d(1, 1, kernel_size=4, stride=4)
        if pred_obj_scores and use_obj_ptrs_in_encoder:
            self.no_obj_ptr = nn.Parameter(torch.zeros(1, self.hidden_dim))
            trunc_normal_(self.no_obj_ptr, std=0.02)
        self.no_obj_embed_spatial = None
        if no_obj_embed_spatial:
            self.no_obj_embed_spatial = nn.Parameter(torch.zeros(1, self.mem_dim))
            trunc_normal_(self.no_obj_embed_spatial, std=0.02)
        # SAM heads: prompt encoder + mask decoder, sized by the image encoder and image size
        embed_size = image_size // backbone_stride
        self.sam_prompt_embed_dim = self.hidden_dim
        self.sam_image_embedding_size = embed_size
        self.sam_prompt_encoder = BuildHead(_filledcfg(prompt_encoder, 'prompt_encoder', {
            'embed_dim': self.hidden_dim, 'image_embedding_size': (embed_size, embed_size),
            'input_image_size': (image_size, image_size),
        }))
        self.sam_mask_decoder = BuildHead(_filledcfg(mask_decoder, 'mask_decoder', {
            'transformer_dim': self.hidden_dim, 'use_high_res_features': use_high_res_features_in_sam,
            'iou_prediction_use_sigmoid': iou_prediction_use_sigmoid, 'pred_obj_scores': pred_obj_scores,
            'pred_obj_scores_mlp': pred_obj_scores_mlp,
            'use_multimask_token_for_obj_ptr': use_multimask_token_for_obj_ptr,
        }))
        if use_obj_ptrs_in_encoder:
            self.obj_ptr_proj = (MLP(self.hidden_dim, self.hidden_dim, self.hidden_dim, 3) if use_mlp_for_obj_ptr_proj
                                 else nn.Linear(self.hidden_dim, self.hidden_dim))
        else:
            self.obj_ptr_proj = nn.Identity()
        # keeps the temporal encoding of object pointers apart from the spatial one
        self.obj_ptr_tpos_proj = nn.Linear(self.hidden_dim, self.mem_dim) if proj_tpos_enc_in_obj_ptrs else nn.Identity()

    @property
    def device(self):
        return next(self.parameters()).device

    def forward(self, *args, **kwargs):
        raise NotImplementedError('SAMV2 is driven by SAMV2ImagePredictor, SAMV2AutomaticMaskGenerator or SAMV2VideoPredictor')

    def loadckpt(self, ckptpath=None, strict=True):
        """Load Meta's checkpoint (URL through torch.hub's cache, or a local path); defaults to the config's."""
        ckptpath = self.ckptpath if ckptpath is None else ckptpath
        if ckptpath is None:
            raise ValueError('ckptpath is None: pass a URL or local path, or build from a config with "ckptpath"')
        loadpretrained(self, ckptpath, strict=strict)
        return self

    # ------------------------------------------------------------------ image features
    @keepheap()
    @inmodelprecision
    def forwardimage(self, images):
        """Run the image encoder on (B, 3, S, S) normalized images (S = image_size).

        Returns the encoder's dict: ``vision_features`` (B, C, S/16, S/16), ``vision_pos_enc`` and
        ``backbone_fpn`` lists (highest resolution first). With high-res features in SAM, the two
        finest FPN levels are already projected by the decoder's ``conv_s0``/``conv_s1`` so that
        repeated prompts on one image do not redo it.
        """
        backbone_out = self.image_encoder(images)
        if self.use_high_res_features_in_sam:
            fpn = list(backbone_out['backbone_fpn'])
            fpn[0] = self.sam_mask_decoder.conv_s0(fpn[0])
            fpn[1] = self.sam_mask_decoder.conv_s1(fpn[1])
            backbone_out['backbone_fpn'] = fpn
        return backbone_out

    def preparebackbonefeatures(self, backbone_out):
        """Flatten the last ``num_feature_levels`` maps to sequence-first (HW, B, C) tensors.

        Returns ``(vision_feats, vision_pos_embeds, feat_sizes)``, lowest level last.
        """
        maps = backbone_out['backbone_fpn'][-self.num_feature_levels:]
        pos = backbone_out['vision_pos_enc'][-self.num_feature_levels:]
        feat_sizes = [(x.shape[-2], x.shape[-1]) for x in pos]
        vision_feats = [x.flatten(2).permute(2, 0, 1) for x in maps]
        vision_pos_embeds = [x.flatten(2).permute(2, 0, 1) for x in pos]
        return vision_feats, vision_pos_embeds, feat_sizes

    def encodeimage(self, images):
        """Image features for prompting without memory: (B, 3, S, S) -> dict.

        ``image_embed``: (B, C, S/16, S/16), the lowest level with the no-memory embedding added;
        ``high_res_feats``: [(B, C/8, S/4, S/4), (B, C/4, S/8, S/8)] (empty without high-res features).
        """
        backbone_out = self.forwardimage(images)
        maps = backbone_out['backbone_fpn'][-self.num_feature_levels:]
        image_embed = maps[-1]
        if self.directly_add_no_mem_embed:
            image_embed = image_embed + self.no_mem_embed.view(1, -1, 1, 1)
        return {'image_embed': image_embed, 'high_res_feats': list(maps[:-1])}

    # ------------------------------------------------------------------ SAM heads
    @inmodelprecision
    def decodeprompts(self, image_embed, high_res_feats, points=None, mask_input=None, multimask_output=True,
                      repeat_image=False, min_iou=None):
        """Prompt encoder + mask decoder on one image's (or a batch's) features.

        ``points``: (coords (N, P, 2) in the model's input frame (pixels of the S x S image), labels (N, P)
        int32 with 1 positive, 0 negative, 2/3 box corners, -1 padding) or None; ``mask_input``: (N, 1,
        S/4, S/4) logits or None. With ``repeat_image`` the single image's features serve N prompts.
        Returns ``(low_res_masks (N, M, S/4, S/4), iou_predictions (N, M))``, M = 3 or 1. With ``min_iou``
        only the masks whose predicted IoU exceeds it are decoded: ``(masks (K, S/4, S/4), ious (K,),
        index (K, 2))``, ``index`` giving each one's (prompt, output) position.
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

    def forwardsamheads(self, backbone_features, point_inputs=None, mask_inputs=None, high_res_features=None,
                        multimask_output=False):
        """Decode masks and an object pointer for B objects from memory-conditioned features.

        ``backbone_features``: (B, C, S/16, S/16); ``point_inputs``: dict with ``point_coords`` (B, P, 2)
        pixels of the S x S input and ``point_labels`` (B, P) int32, or None; ``mask_inputs``: (B, 1, h, w)
        float/bool mask, resized to the prompt encoder's mask size if needed, or None.
        Returns ``(low_res_multimasks (B, M, S/4, S/4), high_res_multimasks (B, M, S, S), ious (B, M),
        low_res_masks (B, 1, S/4, S/4), high_res_masks (B, 1, S, S), obj_ptr (B, C), object_score_logits (B, 1))``;
        the single masks are the best-IoU candidates when ``multimask_output``.
        """
        batch_size, device = backbone_features.size(0), backbone_features.device
        expected = (self.sam_prompt_embed_dim, self.sam_image_embedding_size, self.sam_image_embedding_size)
        if tuple(backbone_features.shape[1:]) != expected:
            raise ValueError(f'backbone_features must be (B, {expected[0]}, {expected[1]}, {expected[2]}), '
                             f'got {tuple(backbone_features.shape)}')
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
        sparse, dense = self.sam_prompt_encoder(points=(coords, labels), boxes=None, masks=mask_prompt)
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
            if self.fixed_no_obj_ptr:
                obj_ptr = appearing * obj_ptr
            obj_ptr = obj_ptr + (1 - appearing) * self.no_obj_ptr
        return low_res_multimasks, high_res_multimasks, ious, low_res_masks, high_res_masks, obj_ptr, object_score_logits
