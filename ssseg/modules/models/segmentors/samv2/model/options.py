"""The flat options of SAMV2 (Meta's ``SAM2Base`` keyword names), grouped by what they control and checked once.

A config's ``SEGMENTOR_CFG`` states them next to the sub-module configs (``image_encoder``, ...). SAMV2
keeps each one as an attribute of the same name, as Meta's model does, so code reading
``model.num_maskmem`` works on both.
"""
import dataclasses

from .precision import PRECISIONS


@dataclasses.dataclass
class SAMV2Options:
    """Every option of SAMV2 besides its sub-modules; defaults are Meta's ``SAM2Base`` defaults.

    Args:
        Each field below is a keyword argument of the same name, described by its comment.

    Raises:
        TypeError: ``compile_modules`` is not a bool.
        ValueError: ``proj_tpos_enc_in_obj_ptrs`` without ``add_tpos_enc_to_obj_ptrs``, ``fixed_no_obj_ptr``
            without ``pred_obj_scores`` and ``use_obj_ptrs_in_encoder``, ``image_size`` not a multiple of
            ``backbone_stride``, or an unknown ``precision``.
    """

    # -- geometry and features
    image_size: int = 1024  # side S of the square model input
    backbone_stride: int = 16  # the image embedding is S / backbone_stride a side
    use_high_res_features_in_sam: bool = False  # the mask decoder adds the stride-4 and stride-8 maps
    # -- memory: how frames are remembered and read back
    num_maskmem: int = 7  # memory slots: the conditioning frames plus num_maskmem - 1 recent frames
    sigmoid_scale_for_mem_enc: float = 1.0  # mask probabilities are scaled ...
    sigmoid_bias_for_mem_enc: float = 0.0  # ... and shifted before the memory encoder
    binarize_mask_from_pts_for_mem_enc: bool = False  # masks from clicks enter the memory as 0/1 (eval only)
    non_overlap_masks_for_mem_enc: bool = False  # one object per pixel in what is remembered (eval only)
    memory_temporal_stride_for_eval: int = 1  # recent memories every this many frames
    max_cond_frames_in_attn: int = -1  # conditioning frames attended to (-1: all)
    directly_add_no_mem_embed: bool = False  # a frame without memory gets no_mem_embed added, no attention
    use_mask_input_as_output_without_sam: bool = False  # a mask prompt is the output itself
    no_obj_embed_spatial: bool = False  # SAM 2.1: absent objects leave a learned mark in the memory
    # -- multimask decoding
    multimask_output_in_sam: bool = False  # three candidates for the first clicks ...
    multimask_min_pt_num: int = 1  # ... when their number of points is in
    multimask_max_pt_num: int = 1  # ... [min, max]
    multimask_output_for_tracking: bool = False  # three candidates on tracked frames too
    use_multimask_token_for_obj_ptr: bool = False  # the pointer comes from the chosen candidate's token
    iou_prediction_use_sigmoid: bool = False  # IoU predictions pass through a sigmoid
    # -- object scores and object pointers
    pred_obj_scores: bool = False  # the decoder predicts whether the object is in the frame
    pred_obj_scores_mlp: bool = False  # ... with an MLP instead of a linear layer
    fixed_no_obj_ptr: bool = False  # an absent object's pointer is the learned no_obj_ptr alone
    soft_no_obj_ptr: bool = False  # blend the pointers by the score's sigmoid instead of 0/1
    use_obj_ptrs_in_encoder: bool = False  # memory attention also reads object pointers
    max_obj_ptrs_in_encoder: int = 16  # pointers of at most this many frames
    add_tpos_enc_to_obj_ptrs: bool = True  # pointers carry a temporal position encoding
    proj_tpos_enc_in_obj_ptrs: bool = False  # SAM 2.1: ... projected to the memory width
    use_signed_tpos_enc_to_obj_ptrs: bool = False  # SAM 2.1: ... signed by the tracking direction
    only_obj_ptrs_in_the_past_for_eval: bool = False  # in eval, only pointers of frames already passed
    use_mlp_for_obj_ptr_proj: bool = False  # the pointer projection is an MLP instead of a linear layer
    # -- how the model runs
    precision: str = 'float32'  # 'bfloat16' runs the entry points under autocast (see precision.py)
    compile_modules: bool = False  # torch.compile the four heavy modules (see compiled.py)

    @classmethod
    def fromkwargs(cls, options: dict) -> 'SAMV2Options':
        """Build and check the options from a config's keyword arguments.

        Args:
            options: {option name: value}, a subset of the fields.

        Returns:
            The checked options, defaults filling the missing ones.

        Raises:
            TypeError: names the unknown options.
            ValueError: inconsistent options (see the class).
        """
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise TypeError(f'unknown SAMV2 option(s) {unknown}; the options are the sub-module configs '
                            f'(image_encoder, memory_attention, memory_encoder, prompt_encoder, mask_decoder), '
                            f'ckptpath and {sorted(known)}')
        return cls(**options)

    def __post_init__(self):
        if self.proj_tpos_enc_in_obj_ptrs and not self.add_tpos_enc_to_obj_ptrs:
            raise ValueError('proj_tpos_enc_in_obj_ptrs=True needs add_tpos_enc_to_obj_ptrs=True')
        if self.fixed_no_obj_ptr and not (self.pred_obj_scores and self.use_obj_ptrs_in_encoder):
            raise ValueError('fixed_no_obj_ptr=True needs pred_obj_scores=True and use_obj_ptrs_in_encoder=True')
        if self.image_size % self.backbone_stride != 0:
            raise ValueError(f'image_size must be a multiple of backbone_stride={self.backbone_stride}, '
                             f'got {self.image_size}')
        if not isinstance(self.compile_modules, bool):
            raise TypeError(f'compile_modules must be a bool, got {type(self.compile_modules).__name__} '
                            f'{self.compile_modules!r}')
        if self.precision not in PRECISIONS:
            raise ValueError(f'precision must be one of {sorted(PRECISIONS)}, got {self.precision!r}')
