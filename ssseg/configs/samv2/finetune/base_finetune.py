"""What every SAMV2 fine-tune shares: Meta's recipe of ``sam2.1_hiera_b+_MOSE_finetune.yaml`` (sam2 1.1.0).

AdamW, base lr 5e-6 and vision lr 3e-6 (``image_encoder.*``) decayed layer by layer (0.9) through the Hiera trunk
(position embeddings undecayed), cosine to a tenth of each rate, weight decay 0.1 (0 for biases and LayerNorm),
gradients clipped to norm 0.1, bfloat16 autocast on CUDA; the loss weights 20/1/1/1 and Meta's prompt simulation.
``ssseg train`` fills in the data paths; ``--cfg-options TRAIN_CFG.key=value`` changes any key.
"""
TRAIN_CFG = dict(
    seed=123,  # Meta's seed_value: model init aside, every random draw of a run follows from it
    max_iters=20000,  # optimizer steps x accumulative_counts (mmengine counts every batch as an iteration)
    batch_size=1,  # clips (or images) per process and iteration: Meta's train_batch_size
    num_workers=2,
    # one endless shuffled stream; each clip's random choices follow from its place in it (resumable, any world size)
    data_sampler=dict(type='SAMV2InfiniteSampler', shuffle=True),
    freeze=[],  # SAMV2 module names kept fixed, e.g. ['image_encoder'] or ['image_encoder', 'sam_prompt_encoder']
    checkpoint_corrections=False,  # Meta's use_act_ckpt_iterative_pt_sampling: recompute correction steps
    step_seed=True,  # seed dropout / drop path per iteration, so that a resumed run equals an uninterrupted one
    prompt_sampler=dict(
        type='SAMV2TrainPromptSampler', prob_to_use_pt_input=0.5, prob_to_use_box_input=0.5, num_frames_to_correct=2,
        rand_frames_to_correct=True, num_init_cond_frames=2, rand_init_cond_frames=True,
        add_all_frames_to_correct_as_cond=True, num_correction_pt_per_frame=7, prob_to_sample_from_gt=0.1, seed=42,
    ),
    loss=dict(
        type='SAMV2MultiStepLoss', weight_dict=dict(loss_mask=20, loss_dice=1, loss_iou=1, loss_class=1),
        focal_alpha=0.25, focal_gamma=2.0, supervise_all_iou=True, iou_use_l1_loss=True, pred_obj_scores=True,
        focal_gamma_obj_score=0.0, focal_alpha_obj_score=-1.0,
    ),
    optim_wrapper=dict(
        type='OptimWrapper',  # AmpOptimWrapper on CUDA when amp is enabled
        constructor='SAMV2OptimWrapperConstructor',
        optimizer=dict(type='AdamW', lr=5e-6, weight_decay=0.1),  # lr: the base rate (all but image_encoder.*)
        paramwise_cfg=dict(
            vision_lr=3e-6, vision_params=['image_encoder.*'], layer_decay=0.9,
            layer_decay_apply_to='image_encoder.trunk', layer_decay_overrides={'*pos_embed*': 1.0},
            no_decay_names=['*bias*'], no_decay_modules=['torch.nn.LayerNorm'],
        ),
        clip_grad=dict(max_norm=0.1, norm_type=2),
        accumulative_counts=1,
    ),
    amp=dict(enabled=True, dtype='bfloat16'),  # CUDA only; a CPU run is float32
    lr_end_ratio=0.1,  # cosine from each group's rate down to this share of it over max_iters
    warmup_iters=0,  # > 0: a linear warm-up from warmup_ratio of the rates (Meta's recipe has none)
    warmup_ratio=1e-3,
    checkpoint=dict(interval=1000, max_keep_ckpts=3),  # resumable checkpoints (model, optimizer, schedulers)
    log_interval=10,  # mmengine's log lines; work_dir/losses.jsonl gets every iteration
)
