"""SAM prompt encoder: clicks and boxes become sparse tokens, a low-res mask becomes a dense map.

Coordinates are pixels (x, y) in the model's input frame (the resized, padded ``input_image_size``
image); the dense map lives on the image-embedding grid. Parameter names match Meta's checkpoints.
"""
from typing import Optional, Tuple

import torch
import torch.nn as nn

from ssseg.modules.models.bricks.layers import BuildActivation, LayerNorm2d
from ssseg.modules.models.bricks.positionencoding import PositionEmbeddingRandom
from ssseg.modules.models.registries import HEADS
from ssseg.modules.utils.checks import ispositiveint


def _sizepair(name, value):
    """Accept an int or an (H, W) pair of positive ints; return a tuple."""
    if ispositiveint(value):
        return (value, value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(ispositiveint(v) for v in value):
        return tuple(value)
    raise ValueError(f'{name} must be a positive int or an (H, W) pair of positive ints, got {value!r}')


@HEADS.register_module()
class PromptEncoder(nn.Module):
    """Embed point / box / mask prompts for the SAM mask decoder.

    Point labels: 1 positive, 0 negative, 2 / 3 box top-left / bottom-right corner, -1 padding.

    Args:
        embed_dim: token width C, a positive even int.
        image_embedding_size: (h, w) of the image embedding (an int means square).
        input_image_size: (H, W) of the encoder input, the frame of prompt coordinates (an int means square).
        mask_in_chans: hidden width of the mask branch (a positive multiple of 4).
        activation: name or class of the mask branch's activations.

    Raises:
        ValueError: a size or width is not as described above.
    """

    NUM_POINT_EMBEDDINGS = 4  # negative, positive, box top-left, box bottom-right

    def __init__(self, embed_dim, image_embedding_size, input_image_size, mask_in_chans, activation='gelu'):
        super().__init__()
        if not ispositiveint(embed_dim) or embed_dim % 2 != 0:
            raise ValueError(f'embed_dim must be a positive even int, got {embed_dim!r}')
        if not ispositiveint(mask_in_chans) or mask_in_chans % 4 != 0:
            raise ValueError(f'mask_in_chans must be a positive multiple of 4, got {mask_in_chans!r}')
        self.embed_dim = embed_dim
        self.image_embedding_size = _sizepair('image_embedding_size', image_embedding_size)
        self.input_image_size = _sizepair('input_image_size', input_image_size)
        # masks enter at 4x the embedding resolution (two stride-2 convs bring them down)
        self.mask_input_size = (4 * self.image_embedding_size[0], 4 * self.image_embedding_size[1])
        self.pe_layer = PositionEmbeddingRandom(embed_dim // 2)
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, embed_dim) for _ in range(self.NUM_POINT_EMBEDDINGS))
        self.not_a_point_embed = nn.Embedding(1, embed_dim)
        hidden = mask_in_chans // 4
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, hidden, kernel_size=2, stride=2),
            LayerNorm2d(hidden),
            BuildActivation(activation),
            nn.Conv2d(hidden, mask_in_chans, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans),
            BuildActivation(activation),
            nn.Conv2d(mask_in_chans, embed_dim, kernel_size=1),
        )
        self.no_mask_embed = nn.Embedding(1, embed_dim)

    def getdensepe(self) -> torch.Tensor:
        """Position encoding of the image-embedding grid cells: (1, C, h, w).

        Returns:
            (1, C, h, w) floating tensor on the model's device, cell centres of the (h, w) grid.
        """
        return self.pe_layer(self.image_embedding_size).unsqueeze(0)

    def _embedpoints(self, coords, labels, pad):
        """coords (B, N, 2) pixels, labels (B, N) -> (B, N (+1 if pad), C)."""
        coords = coords + 0.5  # a pixel index refers to the pixel's centre
        if pad:
            # without a box, the decoder was trained to see one trailing padding token
            coords = torch.cat([coords, coords.new_zeros(coords.shape[0], 1, 2)], dim=1)
            labels = torch.cat([labels, labels.new_full((labels.shape[0], 1), -1)], dim=1)
        embedding = self.pe_layer.forwardwithcoords(coords, self.input_image_size)
        labels = labels.unsqueeze(-1)
        # padding tokens carry no position, only the learned "not a point" vector
        embedding = torch.where(labels == -1, self.not_a_point_embed.weight.expand_as(embedding), embedding)
        for label, point_embed in enumerate(self.point_embeddings):
            embedding = torch.where(labels == label, embedding + point_embed.weight, embedding)
        return embedding

    def _embedboxes(self, boxes):
        """boxes (B, 4) xyxy pixels -> (B, 2, C) corner tokens."""
        corners = (boxes + 0.5).reshape(-1, 2, 2)
        embedding = self.pe_layer.forwardwithcoords(corners, self.input_image_size)
        corner_embeds = torch.cat([self.point_embeddings[2].weight, self.point_embeddings[3].weight], dim=0)
        return embedding + corner_embeds

    @staticmethod
    def _batchsize(points, boxes, masks):
        if points is not None:
            return points[0].shape[0]
        if boxes is not None:
            return boxes.shape[0]
        if masks is not None:
            return masks.shape[0]
        return 1

    def forward(self, points: Optional[Tuple[torch.Tensor, torch.Tensor]] = None, boxes: Optional[torch.Tensor] = None,
                masks: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """Embed the given prompts (any may be None).

        Coordinates are pixels of the ``input_image_size`` frame; a pixel index refers to the pixel's centre.

        Args:
            points: None or (coords (B, N, 2) float pixels (x, y), labels (B, N) int).
            boxes: None or (B, 4) xyxy pixels.
            masks: None or (B, 1, 4h, 4w) logits.

        Returns:
            ``(sparse (B, N', C), dense (B, C, h, w))`` where N' counts the points, one padding token when points
            come without boxes, and two box corners; B is 1 without prompts. Without masks, dense is the
            learned no-mask embedding expanded over the batch and grid (a view).
        """
        batch_size = self._batchsize(points, boxes, masks)
        sparse = [self.not_a_point_embed.weight.new_empty(batch_size, 0, self.embed_dim)]
        if points is not None:
            coords, labels = points
            sparse.append(self._embedpoints(coords, labels, pad=boxes is None))
        if boxes is not None:
            sparse.append(self._embedboxes(boxes))
        sparse = torch.cat(sparse, dim=1) if len(sparse) > 1 else sparse[0]
        if masks is not None:
            dense = self.mask_downscaling(masks)
        else:
            height, width = self.image_embedding_size
            dense = self.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(batch_size, -1, height, width)
        return sparse, dense
