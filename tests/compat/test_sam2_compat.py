"""Drop-in use by code written for Meta's package: ``ssseg.compat.sam2`` against Meta's own builders, predictors
sharing one built model (``model=``), and the flow of Meta's VOS tool run on both packages.

The video runs use image_size 128 on both sides (``++model.image_size=128``, which both builders accept): the
tracking logic does not depend on the image size, its cost does. Comparisons are those of the parity tests:
logits within 1e-4 of their scale, binary masks >= 99.95 % equal.
"""
import numpy as np
import pytest
import torch
from PIL import Image

from ssseg.compat import sam2 as compat
from ssseg.modules.models.segmentors.samv2 import SAMV2AutomaticMaskGenerator, SAMV2ImagePredictor
from ssseg.modules.models.segmentors.samv2.video import SAMV2VideoPredictor

from helpers import ORACLE_CONFIGS, assertclose, syntheticimage, writeclip, writetinyckpt

NAME = 'samv21_hiera_tiny'
META_NAME = ORACLE_CONFIGS[NAME]
SMALL = ['++model.image_size=128']
MIN_AGREEMENT = 0.9995

pytestmark = pytest.mark.usefixtures('onethread')


def assertsamemasks(ours, theirs):
    ours, theirs = torch.as_tensor(np.asarray(ours)), torch.as_tensor(np.asarray(theirs))
    assert ours.shape == theirs.shape
    assert ((ours > 0) == (theirs > 0)).float().mean().item() >= MIN_AGREEMENT


def assertsamelogits(ours, theirs):
    assertclose(torch.as_tensor(np.asarray(ours)).float(), torch.as_tensor(np.asarray(theirs)).float())
    assertsamemasks(ours, theirs)


def test_build_sam2_with_meta_names_equals_meta(makeckpt, name=NAME):
    from sam2.build_sam import build_sam2
    from sam2.sam2_image_predictor import SAM2ImagePredictor
    ckpt = makeckpt(name)
    ours = compat.SAM2ImagePredictor(compat.build_sam2(ORACLE_CONFIGS[name], ckpt, device='cpu'))
    theirs = SAM2ImagePredictor(build_sam2(ORACLE_CONFIGS[name], ckpt, device='cpu'))
    image = syntheticimage(300, 400, seed=2)
    ours.set_image(image)
    theirs.set_image(image)
    assertclose(ours.get_image_embedding(), theirs.get_image_embedding())
    for prompt in (dict(point_coords=np.array([[200, 150]]), point_labels=np.array([1])),
                   dict(box=np.array([50, 40, 300, 250]), multimask_output=False)):
        for mine, official in zip(ours.predict(**prompt), theirs.predict(**prompt)):
            assertsamelogits(mine, official)


def test_legacy_meta_names_and_the_same_weights(makeckpt):
    ckpt = makeckpt('samv2_hiera_tiny')
    legacy = compat.build_sam2('sam2_hiera_t.yaml', ckpt, device='cpu')
    current = compat.build_sam2('configs/sam2/sam2_hiera_t.yaml', ckpt, device='cpu', apply_postprocessing=False)
    assert all(torch.equal(a, b) for a, b in zip(legacy.state_dict().values(), current.state_dict().values()))
    assert legacy.sam_mask_decoder.dynamic_multimask_via_stability
    assert not current.sam_mask_decoder.dynamic_multimask_via_stability


def test_build_sam2_video_predictor_equals_meta(makeckpt, tmp_path):
    from sam2.build_sam import build_sam2_video_predictor
    ckpt = makeckpt(NAME)
    clip = writeclip(tmp_path / 'frames', num_frames=4)
    overrides = SMALL + ['++model.non_overlap_masks=true']
    ours = compat.build_sam2_video_predictor(META_NAME, ckpt, device='cpu', hydra_overrides_extra=overrides,
                                             apply_postprocessing=False)
    theirs = build_sam2_video_predictor(META_NAME, ckpt, device='cpu', hydra_overrides_extra=overrides,
                                        apply_postprocessing=False)
    assert ours.non_overlap_masks and ours.fill_hole_area == 0 and ours.model.image_size == 128
    results = []
    for predictor in (ours, theirs):
        state = predictor.init_state(video_path=clip)
        first = predictor.add_new_points_or_box(inference_state=state, frame_idx=0, obj_id=1,
                                                points=np.array([[30, 50]], np.float32), labels=np.array([1]))
        second = predictor.add_new_points_or_box(inference_state=state, frame_idx=0, obj_id=2,
                                                 box=np.array([100, 60, 140, 95], np.float32))
        tracked = list(predictor.propagate_in_video(state))
        results.append([first, second] + tracked)
    for (frame_a, ids_a, logits_a), (frame_b, ids_b, logits_b) in zip(*results):
        assert frame_a == frame_b and list(ids_a) == list(ids_b)
        assertsamelogits(logits_a, logits_b)


def test_video_postprocessing_as_meta_builds_it(makeckpt):
    ckpt = makeckpt(NAME)
    on = compat.build_sam2_video_predictor(META_NAME, ckpt, device='cpu', hydra_overrides_extra=SMALL + [
        '++model.fill_hole_area=0'])  # Meta's builder puts its own fill_hole_area=8 after the caller's
    off = compat.build_sam2_video_predictor(META_NAME, ckpt, device='cpu', hydra_overrides_extra=SMALL,
                                            apply_postprocessing=False)
    assert on.fill_hole_area == 8 and on.model.binarize_mask_from_pts_for_mem_enc
    assert on.model.sam_mask_decoder.dynamic_multimask_via_stability
    assert off.fill_hole_area == 0 and not off.model.binarize_mask_from_pts_for_mem_enc
    assert not off.model.sam_mask_decoder.dynamic_multimask_via_stability


@pytest.mark.parametrize('call, error, words', [
    (lambda ckpt: compat.build_sam2('sam2.1_hiera_t.yaml', ckpt), ValueError, "not one of Meta's config names"),
    (lambda ckpt: compat.build_sam2(META_NAME), ValueError, 'ckpt_path is required'),
    (lambda ckpt: compat.build_sam2(META_NAME, ckpt, hydra_overrides_extra=['++model.compile_image_encoder=true']),
     ValueError, "'compile_image_encoder' is not supported"),
    (lambda ckpt: compat.build_sam2(META_NAME, ckpt, hydra_overrides_extra=['++model.fill_hole_area=8']),
     ValueError, "'fill_hole_area' is not supported"),
    (lambda ckpt: compat.build_sam2(META_NAME, ckpt, hydra_overrides_extra=['++trainer.max_epochs=3']),
     ValueError, r'only \+\+model\.<name>=<value>'),
    (lambda ckpt: compat.build_sam2(META_NAME, ckpt, hydra_overrides_extra='++model.num_maskmem=7'), TypeError,
     'must be a list'),
    (lambda ckpt: compat.build_sam2(META_NAME, ckpt, mode='test'), ValueError, "mode must be 'eval' or 'train'"),
    (lambda ckpt: compat.build_sam2(META_NAME, ckpt, devcie='cpu'), TypeError, r"\['devcie'\]"),
    (lambda ckpt: compat.build_sam2_video_predictor(META_NAME, ckpt, vos_optimized='yes'), TypeError,
     'vos_optimized must be a bool'),
])
def test_compat_refuses_by_name(makeckpt, call, error, words):
    with pytest.raises(error, match=words):
        call(makeckpt(NAME))


def test_override_values_and_train_mode(makeckpt):
    model = compat.build_sam2(META_NAME, makeckpt(NAME), device='cpu', mode='train', apply_postprocessing=False,
                              hydra_overrides_extra=SMALL + ['model.memory_temporal_stride_for_eval=2',
                                                             '+model.sigmoid_scale_for_mem_enc=12.5',
                                                             '++model.compile_image_encoder=false'])
    assert model.training and model.image_size == 128 and model.memory_temporal_stride_for_eval == 2
    assert model.sigmoid_scale_for_mem_enc == 12.5


# ---------------------------------------------------------------------- one built model, several predictors
@pytest.fixture(scope='module')
def tinycfg(tmp_path_factory):
    return writetinyckpt(tmp_path_factory.mktemp('shared') / 'tiny.pt')


def test_predictors_share_one_model(tinycfg):
    image = syntheticimage(96, 128, seed=3)
    model = SAMV2ImagePredictor(samv2_cfg=tinycfg, device='cpu', apply_postprocessing=False).model
    predictor = SAMV2ImagePredictor(model=model)
    generator = SAMV2AutomaticMaskGenerator(model=model, points_per_side=4, pred_iou_thresh=0, stability_score_thresh=0)
    video = SAMV2VideoPredictor(model=model)
    assert predictor.model is model and generator.model is model and video.model is model
    pointers = {p.data_ptr() for p in model.parameters()}
    for user in (predictor, generator, video):
        assert {p.data_ptr() for p in user.model.parameters()} == pointers
    # the shared model gives what a model of its own gives
    own = SAMV2AutomaticMaskGenerator(samv2_cfg=tinycfg, device='cpu', points_per_side=4, pred_iou_thresh=0,
                                      stability_score_thresh=0)
    shared, separate = generator.generate(image), own.generate(image)
    assert len(shared) == len(separate) > 0
    for a, b in zip(shared, separate):
        assert np.array_equal(a['segmentation'], b['segmentation']) and a['bbox'] == b['bbox']
    predictor.setimage(image)
    assert predictor.predict(point_coords=[[60, 40]], point_labels=[1])[0].shape == (3, 96, 128)


def test_compat_predictor_classes_take_the_model_first(tinycfg):
    model = SAMV2ImagePredictor(samv2_cfg=tinycfg, device='cpu').model
    predictor = compat.SAM2ImagePredictor(model, 0.5)
    generator = compat.SAM2AutomaticMaskGenerator(model, 8, points_per_batch=16)
    assert predictor.model is model and predictor.mask_threshold == 0.5
    assert generator.model is model and len(generator.point_grids[0]) == 64 and generator.points_per_batch == 16


@pytest.mark.parametrize('kwargs, error, words', [
    (dict(samv2_cfg='tiny'), ValueError, 'model= is a built model: give it alone, without samv2_cfg'),
    (dict(use_default_samv21_t=True), ValueError, 'without use_default_samv21_t'),
    (dict(precision='bfloat16'), ValueError, r'precision are options of building the model.*model.precision'),
    (dict(apply_postprocessing=True, load_ckpt_strict=True), ValueError, 'apply_postprocessing, load_ckpt_strict'),
    (dict(device='cuda:0' if torch.cuda.is_available() else 'cuda'), ValueError, 'device'),
])
def test_model_argument_refuses_build_options(tinycfg, kwargs, error, words):
    model = SAMV2ImagePredictor(samv2_cfg=tinycfg, device='cpu').model
    for cls in (SAMV2ImagePredictor, SAMV2AutomaticMaskGenerator, SAMV2VideoPredictor):
        with pytest.raises(error, match=words):
            cls(model=model, **kwargs)


def test_model_argument_must_be_a_samv2():
    with pytest.raises(TypeError, match='model must be a built SAMV2.*got Linear'):
        SAMV2ImagePredictor(model=torch.nn.Linear(2, 2))
    with pytest.raises(TypeError, match=r'a built model goes in model=\.\.\.'):
        SAMV2ImagePredictor(torch.nn.Linear(2, 2))


def test_fromconfig_takes_names_paths_and_dicts(tinycfg, torchhome, makeckpt):
    makeckpt(NAME)
    by_name = SAMV2ImagePredictor.fromconfig(NAME, device='cpu')
    assert by_name.model.image_size == 1024 and by_name.device.type == 'cpu'
    by_dict = SAMV2VideoPredictor.fromconfig(tinycfg, device='cpu', fill_hole_area=2)
    assert by_dict.model.image_size == 128 and by_dict.fill_hole_area == 2


# ---------------------------------------------------------------------- the flow of Meta's tools/vos_inference.py
def writevosdata(folder, num_frames=5):
    """A JPEG clip and, per frame, a palette PNG of object ids: object 1 from frame 0, object 3 from frame 2."""
    frames = writeclip(folder / 'frames', num_frames=num_frames)
    masks = folder / 'masks'
    masks.mkdir()
    yy, xx = np.mgrid[0:120, 0:160]
    for t in range(num_frames):
        labels = np.zeros((120, 160), np.uint8)
        labels[(yy - 50) ** 2 + (xx - (30 + 6 * t)) ** 2 < 18 ** 2] = 1
        if t >= 2:
            labels[60 + 3 * t:95 + 3 * t, 100:140] = 3
        png = Image.fromarray(labels, mode='P')
        png.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0] + [0] * 756)
        png.save(masks / f'{t:05d}.png')
    return frames, str(masks)


def vosseparateperobject(predictor, frames, masks, num_frames):
    """The VOS tool's per-object flow, written again: every object's masks from its first frame on, one
    propagation per object from that frame, the outputs merged with -1024 where an object has none and the
    non-overlap constraint applied to the merged scores. Returns {frame: (N, 1, H, W) scores} of ids 1, 3."""
    inputs = {}
    for t in range(num_frames):
        labels = np.array(Image.open(f'{masks}/{t:05d}.png'))
        for obj_id in np.unique(labels[labels > 0]).tolist():
            inputs.setdefault(obj_id, (t, labels == obj_id))  # each object's first frame only
    state = predictor.init_state(video_path=frames, async_loading_frames=False)
    height, width = state['video_height'], state['video_width']
    outputs = {}
    for obj_id in sorted(inputs):
        predictor.reset_state(state)
        frame_idx, mask = inputs[obj_id]
        predictor.add_new_mask(inference_state=state, frame_idx=frame_idx, obj_id=obj_id, mask=mask)
        for out_frame, _, logits in predictor.propagate_in_video(state, start_frame_idx=frame_idx, reverse=False):
            outputs.setdefault(obj_id, {})[out_frame] = logits.cpu().numpy()
    merged = {}
    for t in range(num_frames):
        scores = torch.full((len(inputs), 1, height, width), -1024.0)
        for i, obj_id in enumerate(sorted(inputs)):
            if t in outputs[obj_id]:
                scores[i] = torch.from_numpy(outputs[obj_id][t][0])
        merged[t] = predictor._apply_non_overlapping_constraints(scores)
    return merged


def test_vos_tool_flow_with_objects_appearing_later_equals_meta(makeckpt, tmp_path):
    from sam2.build_sam import build_sam2_video_predictor
    ckpt = makeckpt(NAME)
    frames, masks = writevosdata(tmp_path)
    overrides = SMALL + ['++model.non_overlap_masks=true']  # what the tool passes in its palette-PNG mode
    ours = compat.build_sam2_video_predictor(config_file=META_NAME, ckpt_path=ckpt, device='cpu',
                                             apply_postprocessing=False, hydra_overrides_extra=overrides)
    theirs = build_sam2_video_predictor(config_file=META_NAME, ckpt_path=ckpt, device='cpu',
                                        apply_postprocessing=False, hydra_overrides_extra=overrides)
    mine, official = (vosseparateperobject(predictor, frames, masks, 5) for predictor in (ours, theirs))
    assert sorted(mine) == sorted(official) == list(range(5))
    for t in range(5):
        assertsamelogits(mine[t], official[t])
    # object 3 has no output before it appears (-1024), its given mask on frame 2, and one object per pixel
    assert bool((mine[1][1] == -1024).all()) and bool((mine[2][1] > 0).any())
    assert not any(bool(((scores[0] > 0) & (scores[1] > 0)).any()) for scores in mine.values())


def test_vos_optimized_builds_the_compiled_path(makeckpt):
    # compiled lazily: building costs nothing until the first frame
    predictor = compat.build_sam2_video_predictor(META_NAME, makeckpt(NAME), device='cpu', vos_optimized=True)
    assert predictor.model.compile_modules and predictor.model.memory_attention._compiled_call_impl is not None
    assert not compat.build_sam2_video_predictor(META_NAME, makeckpt(NAME), device='cpu').model.compile_modules
