"""Prompts simulated from ground-truth masks while training SAMV2, with the semantics of Meta's ``SAM2Train``.

Per clip (step): either the ground-truth masks are the prompts of the first conditioning frames, or clicks are:
one point sampled uniformly inside each object (or a noised box around it) on each initial conditioning frame, then
correction clicks sampled uniformly from each object's error region (false negatives give positive clicks, false
positives negative ones) on the frames chosen for correction. Coordinates are (x, y) pixels of the model's S x S input;
labels are int32: 1 positive, 0 negative, 2/3 box corners.

Randomness is explicit: :meth:`SAMV2TrainPromptSampler.startstep` seeds the step's choices (which frames, points or
box) from ``(seed, iteration)``, the same on every rank as Meta's shared generator, and each object's point noise from
``(seed, iteration, object index in the global batch)``. A step is therefore reproducible after a resume, and one
process with a batch of 2 clips draws what 2 processes with one clip each draw.
"""
import dataclasses
import random
from typing import Dict, List, Optional, Tuple

import torch

from ssseg.modules.models.registries import PROMPT_SAMPLERS

_SEED_MIX = 1_000_003  # a prime that spreads (seed, iteration, object) over distinct generator seeds


@dataclasses.dataclass
class PromptPlan:
    """What one training clip is prompted with.

    Attributes:
        use_pt_input: clicks (and boxes) rather than ground-truth masks on the initial conditioning frames.
        init_cond_frames: the initial conditioning frames, the first frame first; tracked first, in this order.
        frames_to_correct: frames that get correction clicks (the initial ones first); empty with mask prompts.
        box_frames: initial conditioning frames prompted by a box instead of one click.
    """
    use_pt_input: bool
    init_cond_frames: List[int]
    frames_to_correct: List[int]
    box_frames: List[int] = dataclasses.field(default_factory=list)

    def framesnotincond(self, num_frames: int) -> List[int]:
        """The frames tracked after the initial conditioning frames, in time order."""
        return [t for t in range(num_frames) if t not in self.init_cond_frames]


def masktobox(masks: torch.Tensor) -> torch.Tensor:
    """Tight boxes (O, 4) float (x1, y1, x2, y2), inclusive pixel indices, of (O, 1, H, W) bool masks.

    An empty mask gives (W, H, -1, -1), which the later clamp turns into a corner of the image, as Meta's."""
    height, width = masks.shape[-2:]
    cols, rows = masks.flatten(1, 2).any(1), masks.flatten(1, 2).any(2)
    xs = torch.arange(width, device=masks.device)
    ys = torch.arange(height, device=masks.device)
    x1 = torch.where(cols, xs, width).amin(-1)
    x2 = torch.where(cols, xs, -1).amax(-1)
    y1 = torch.where(rows, ys, height).amin(-1)
    y2 = torch.where(rows, ys, -1).amax(-1)
    return torch.stack([x1, y1, x2, y2], dim=-1).float()


@PROMPT_SAMPLERS.register_module()
class SAMV2TrainPromptSampler:
    """Simulated prompts for :meth:`SAMV2.forwardtrain` (Meta's ``SAM2Train`` options, without ``_for_train``).

    Args:
        prob_to_use_pt_input: probability that a clip is prompted by clicks or boxes rather than masks
            (one-frame clips, images, always are).
        prob_to_use_box_input: probability that a prompted frame gets a box rather than one click.
        num_frames_to_correct: frames of a clip getting correction clicks (including the initial ones).
        rand_frames_to_correct: draw that number uniformly from [initial frames, num_frames_to_correct].
        num_init_cond_frames: initial conditioning frames (the first frame and random others).
        rand_init_cond_frames: draw that number uniformly from [1, num_init_cond_frames].
        add_all_frames_to_correct_as_cond: a corrected frame becomes a conditioning frame of the memory.
        num_correction_pt_per_frame: correction clicks added one at a time on each frame to correct.
        prob_to_sample_from_gt: probability that a correction click is sampled from the ground truth alone
            (ignoring the prediction), as Meta does to avoid overfitting to error regions.
        box_noise, box_noise_bound: the box corners move by up to ``box_noise`` of the box size, at most
            ``box_noise_bound`` pixels (SAM's defaults).
        seed: the seed the step's draws are derived from.
    Raises:
        ValueError: probabilities outside [0, 1], counts below their minimum, or fewer frames to correct than
            initial conditioning frames.
    """

    def __init__(self, prob_to_use_pt_input: float = 0.5, prob_to_use_box_input: float = 0.5,
                 num_frames_to_correct: int = 2, rand_frames_to_correct: bool = True, num_init_cond_frames: int = 2,
                 rand_init_cond_frames: bool = True, add_all_frames_to_correct_as_cond: bool = True,
                 num_correction_pt_per_frame: int = 7, prob_to_sample_from_gt: float = 0.1, box_noise: float = 0.1,
                 box_noise_bound: int = 20, seed: int = 42):
        for name, value in (('prob_to_use_pt_input', prob_to_use_pt_input),
                            ('prob_to_use_box_input', prob_to_use_box_input),
                            ('prob_to_sample_from_gt', prob_to_sample_from_gt)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ValueError(f'{name} must be a probability in [0, 1], got {value!r}')
        for name, value, low in (('num_frames_to_correct', num_frames_to_correct, 1),
                                 ('num_init_cond_frames', num_init_cond_frames, 1),
                                 ('num_correction_pt_per_frame', num_correction_pt_per_frame, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f'{name} must be an int >= {low}, got {value!r}')
        if prob_to_use_pt_input > 0 and num_frames_to_correct < num_init_cond_frames:
            raise ValueError(f'num_frames_to_correct ({num_frames_to_correct}) must be >= num_init_cond_frames '
                             f'({num_init_cond_frames}): every initial conditioning frame gets correction clicks')
        self.prob_to_use_pt_input, self.prob_to_use_box_input = float(prob_to_use_pt_input), prob_to_use_box_input
        self.num_frames_to_correct, self.rand_frames_to_correct = num_frames_to_correct, rand_frames_to_correct
        self.num_init_cond_frames, self.rand_init_cond_frames = num_init_cond_frames, rand_init_cond_frames
        self.add_all_frames_to_correct_as_cond = add_all_frames_to_correct_as_cond
        self.num_correction_pt_per_frame = num_correction_pt_per_frame
        self.prob_to_sample_from_gt = prob_to_sample_from_gt
        self.box_noise, self.box_noise_bound, self.seed = box_noise, box_noise_bound, int(seed)
        self.startstep(0)

    def startstep(self, iteration: int, first_object: int = 0) -> None:
        """Seed the draws of one training step.

        Args:
            iteration: the step's index (the runner's iteration).
            first_object: the index, in the global batch over all ranks, of this process's first object.
        """
        self._iteration, self._first_object = int(iteration), int(first_object)
        self._choices = random.Random(self.seed * _SEED_MIX + self._iteration)
        self._generators: Dict[Tuple[int, str], torch.Generator] = {}

    # ------------------------------------------------------------------ per-clip choices
    def plan(self, num_frames: int) -> PromptPlan:
        """Draw the prompting of a clip of ``num_frames`` frames (the first frame is always conditioning)."""
        pt_prob, to_correct, init = self.prob_to_use_pt_input, self.num_frames_to_correct, self.num_init_cond_frames
        if num_frames == 1:  # an image: one click or box, corrected
            pt_prob, to_correct, init = 1.0, 1, 1
        init = min(init, num_frames)
        use_pt_input = self._choices.random() < pt_prob
        if self.rand_init_cond_frames and init > 1:
            init = self._choices.randint(1, init)
        to_correct = min(to_correct, num_frames)
        if use_pt_input and self.rand_frames_to_correct and to_correct > init:
            to_correct = self._choices.randint(init, to_correct)
        init_cond_frames = [0] + self._choices.sample(range(1, num_frames), init - 1)
        others = [t for t in range(num_frames) if t not in init_cond_frames]
        box_frames = []
        if use_pt_input:
            box_frames = [t for t in init_cond_frames if self._choices.random() < self.prob_to_use_box_input]
            frames_to_correct = init_cond_frames + self._choices.sample(others, max(to_correct - init, 0))
        else:
            frames_to_correct = []
        return PromptPlan(use_pt_input, init_cond_frames, frames_to_correct, box_frames)

    def samplefromgt(self) -> bool:
        """Whether the next correction click ignores the prediction (drawn with ``prob_to_sample_from_gt``)."""
        return self.prob_to_sample_from_gt > 0 and self._choices.random() < self.prob_to_sample_from_gt

    # ------------------------------------------------------------------ per-object draws
    def initialprompt(self, gt_masks: torch.Tensor, use_box: bool) -> Tuple[torch.Tensor, torch.Tensor]:
        """One click inside each object, or a noised box around it.

        Args:
            gt_masks: (O, 1, S, S) bool ground truth of one frame.
            use_box: boxes instead of clicks.
        Returns:
            coords (O, P, 2) float32 pixels and labels (O, P) int32, P = 2 for boxes (labels 2, 3), else 1.
        """
        if use_box:
            return self._noisedboxes(gt_masks)
        return self.correctionclick(gt_masks, None)

    def correctionclick(self, gt_masks: torch.Tensor,
                        pred_masks: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        """One click per object drawn uniformly from its error region.

        A false-negative pixel gives a positive click, a false positive a negative one; a perfect prediction gives
        a negative click on the background. With ``pred_masks`` None the prediction counts as empty.

        Args:
            gt_masks: (O, 1, S, S) bool.
            pred_masks: None or (O, 1, S, S) bool.
        Returns:
            coords (O, 1, 2) float32 (x, y) pixels and labels (O, 1) int32.
        """
        if pred_masks is None:
            pred_masks = torch.zeros_like(gt_masks)
        width = gt_masks.shape[-1]
        perfect = (gt_masks == pred_masks).flatten(1).all(1)[:, None, None, None]
        negatives = (~gt_masks & pred_masks) | (perfect & ~gt_masks)
        positives = gt_masks & ~pred_masks
        # candidates are (pixel, label) pairs: the largest uniform noise among them picks one uniformly
        candidates = torch.stack([negatives[:, 0], positives[:, 0]], dim=-1).flatten(1)
        noise = self._noise(candidates.shape, candidates.device, 'click')
        pick = (noise * candidates).argmax(dim=1)
        labels = (pick % 2).to(torch.int32)[:, None]
        pixel = pick // 2
        coords = torch.stack([pixel % width, pixel // width], dim=-1).float()[:, None]
        return coords, labels

    def _noisedboxes(self, gt_masks):
        boxes = masktobox(gt_masks)
        height, width = gt_masks.shape[-2:]
        if self.box_noise > 0:
            bound = torch.tensor(float(self.box_noise_bound), device=boxes.device)
            max_dx = torch.minimum((boxes[:, 2] - boxes[:, 0]) * self.box_noise, bound)
            max_dy = torch.minimum((boxes[:, 3] - boxes[:, 1]) * self.box_noise, bound)
            jitter = 2 * self._noise((boxes.shape[0], 4), boxes.device, 'box') - 1
            boxes = boxes + jitter * torch.stack([max_dx, max_dy, max_dx, max_dy], dim=-1)
        # inside the image even without noise (Meta clamps only noised boxes; only an empty mask's box differs)
        limit = torch.tensor([width - 1, height - 1, width - 1, height - 1], device=boxes.device, dtype=boxes.dtype)
        boxes = torch.minimum(boxes.clamp(min=0), limit)
        labels = torch.tensor([[2, 3]], dtype=torch.int32, device=boxes.device).expand(boxes.shape[0], 2)
        return boxes.reshape(-1, 2, 2), labels.contiguous()

    def _noise(self, shape, device, kind):
        """Uniform [0, 1) noise of ``shape`` (objects first), each object's row from its own generator."""
        rows = [torch.rand(shape[1:], generator=self._generator(index, kind, device), device=device)
                for index in range(shape[0])]
        return torch.stack(rows) if rows else torch.rand(shape, device=device)

    def _generator(self, index, kind, device):
        key = (index, kind, str(device))
        if key not in self._generators:
            seed = ((self.seed * _SEED_MIX + self._iteration) * _SEED_MIX + self._first_object + index) * 2
            generator = torch.Generator(device=device)
            generator.manual_seed((seed + (kind == 'box')) % (2 ** 63))
            self._generators[key] = generator
        return self._generators[key]
