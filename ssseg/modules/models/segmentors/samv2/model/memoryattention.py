"""Memory attention: current-frame tokens attend to themselves and to the memory bank, with axial 2D RoPE
(``ssseg.modules.models.bricks.rope``). Parameter names match Meta's checkpoints.
"""
from typing import Optional, Sequence, Union

import torch
import torch.nn as nn

from ssseg.modules.models.bricks.layers import BuildActivation
from ssseg.modules.models.bricks.rope import RoPEAttention
from ssseg.modules.models.registries import TRANSFORMER_LAYERS, TRANSFORMERS, BuildAttention, BuildTransformerLayer


def _withpos(x, pos, enabled):
    """x + pos when enabled and a position encoding is given; None means no encoding."""
    return x + pos if enabled and pos is not None else x


@TRANSFORMER_LAYERS.register_module()
class MemoryAttentionLayer(nn.Module):
    """Pre-norm layer: self-attention, cross-attention to the memory, then a feed-forward block.

    ``self_attention`` and ``cross_attention`` are attention config dicts (ATTENTIONS) (usually RoPEAttention,
    the cross one with rope_k_repeat and kv_in_dim = memory channels). Inputs are batch first.

    Args:
        activation: name or class of the feed-forward activation.
        cross_attention: attention cfg of the cross-attention to the memory.
        d_model: token channels; both attentions must have ``embedding_dim == d_model``.
        dim_feedforward: hidden width of the feed-forward block.
        dropout: dropout probability in [0, 1) after each step and inside the feed-forward block.
        pos_enc_at_attn: add ``query_pos`` to the self-attention's queries and keys.
        pos_enc_at_cross_attn_keys: add ``pos`` to the memory keys.
        pos_enc_at_cross_attn_queries: add ``query_pos`` to the cross-attention queries.
        self_attention: attention cfg of the self-attention.

    Raises:
        ValueError: ``dropout`` is outside [0, 1), or an attention's ``embedding_dim`` differs from ``d_model``.
    """

    def __init__(self, activation, cross_attention, d_model, dim_feedforward, dropout, pos_enc_at_attn,
                 pos_enc_at_cross_attn_keys, pos_enc_at_cross_attn_queries, self_attention):
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f'dropout must be a probability in [0, 1), got {dropout!r}')
        self.d_model = d_model
        self.dim_feedforward = dim_feedforward
        self.self_attn = BuildAttention(self_attention)
        self.cross_attn_image = BuildAttention(cross_attention)
        for name, attn in (('self_attention', self.self_attn), ('cross_attention', self.cross_attn_image)):
            if getattr(attn, 'embedding_dim', d_model) != d_model:
                raise ValueError(f'{name} must have embedding_dim equal to d_model={d_model}, got {attn.embedding_dim}')
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)
        self.activation = BuildActivation(activation)
        self.pos_enc_at_attn = pos_enc_at_attn
        self.pos_enc_at_cross_attn_queries = pos_enc_at_cross_attn_queries
        self.pos_enc_at_cross_attn_keys = pos_enc_at_cross_attn_keys

    def forward(self, tgt: torch.Tensor, memory: torch.Tensor, pos: Optional[torch.Tensor] = None,
                query_pos: Optional[torch.Tensor] = None, num_k_exclude_rope: int = 0,
                memory_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """tgt, query_pos (B, HW, d_model); memory, pos (B, M, Cmem) -> (B, HW, d_model).

        Args:
            tgt: (B, HW, d_model) current-frame tokens in row-major grid order.
            memory: (B, M, Cmem) memory tokens.
            pos: None or (B, M, Cmem) position encoding of the memory.
            query_pos: None or (B, HW, d_model) position encoding of ``tgt``.
            num_k_exclude_rope: the last this many memory tokens are object pointers, left unrotated.
            memory_mask: None or (B, M) bool, False on padding memory tokens (objects of different memory lengths
                batched together), which get no attention weight.

        Returns:
            (B, HW, d_model) updated tokens.

        Raises:
            ValueError: ``num_k_exclude_rope`` > 0 with a cross attention other than RoPEAttention.
        """
        normed = self.norm1(tgt)
        q = _withpos(normed, query_pos, self.pos_enc_at_attn)
        tgt = tgt + self.dropout1(self.self_attn(q, q, normed))
        normed = self.norm2(tgt)
        kwargs = {}
        if num_k_exclude_rope > 0:
            if not isinstance(self.cross_attn_image, RoPEAttention):
                raise ValueError(f'num_k_exclude_rope={num_k_exclude_rope} needs a RoPEAttention cross attention, '
                                 f'got {type(self.cross_attn_image).__name__}')
            kwargs['num_k_exclude_rope'] = num_k_exclude_rope
        if memory_mask is not None:
            kwargs['key_mask'] = memory_mask
        attended = self.cross_attn_image(
            _withpos(normed, query_pos, self.pos_enc_at_cross_attn_queries),
            _withpos(memory, pos, self.pos_enc_at_cross_attn_keys), memory, **kwargs,
        )
        tgt = tgt + self.dropout2(attended)
        hidden = self.dropout(self.activation(self.linear1(self.norm3(tgt))))
        return tgt + self.dropout3(self.linear2(hidden))


@TRANSFORMERS.register_module()
class MemoryAttention(nn.Module):
    """``num_layers`` MemoryAttentionLayers (each built from the ``layer`` dict) and a final LayerNorm.

    Inputs and output are sequence first, as in Meta's video predictor: tokens of the current frame
    (HW, B, C) in row-major grid order, memory (M, B, Cmem) whose last ``num_obj_ptr_tokens`` entries
    are object-pointer tokens.

    Args:
        d_model: token channels.
        pos_enc_at_input: add 0.1 * ``curr_pos`` to the input tokens.
        layer: transformer-layer cfg (TRANSFORMER_LAYERS), built ``num_layers`` times.
        num_layers: number of layers, a positive int.
        batch_first: the layers take batch-first tokens (inputs and output are transposed around them).

    Raises:
        ValueError: ``num_layers`` is not a positive int.
    """

    def __init__(self, d_model, pos_enc_at_input, layer, num_layers, batch_first=True):
        super().__init__()
        if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers <= 0:
            raise ValueError(f'num_layers must be a positive int, got {num_layers!r}')
        self.d_model = d_model
        self.layers = nn.ModuleList(BuildTransformerLayer(layer) for _ in range(num_layers))
        self.num_layers = num_layers
        self.norm = nn.LayerNorm(d_model)
        self.pos_enc_at_input = pos_enc_at_input
        self.batch_first = batch_first

    def forward(self, curr: Union[torch.Tensor, Sequence[torch.Tensor]], memory: torch.Tensor,
                curr_pos: Optional[Union[torch.Tensor, Sequence[torch.Tensor]]] = None,
                memory_pos: Optional[torch.Tensor] = None, num_obj_ptr_tokens: int = 0,
                memory_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Condition the current frame's tokens on the memory.

        Args:
            curr: (HW, B, d_model) current-frame tokens in row-major grid order, or a one-element list of them.
            memory: (M, B, Cmem) memory tokens, object-pointer tokens last.
            curr_pos: None or (HW, B, d_model) position encoding of ``curr`` (a one-element list if ``curr`` is).
            memory_pos: None or (M, B, Cmem) position encoding of ``memory``.
            num_obj_ptr_tokens: number of trailing object-pointer tokens in ``memory``.
            memory_mask: None or (B, M) bool, False on padding tokens of ``memory`` (never attended).

        Returns:
            (HW, B, d_model) memory-conditioned current tokens.

        Raises:
            ValueError: a list ``curr`` / ``curr_pos`` does not hold exactly one tensor, ``curr`` and
                ``memory`` are not 3-d with the same batch size, or ``memory_mask`` is not (B, M) bool.
        """
        if isinstance(curr, (list, tuple)):
            wrong_pos = curr_pos is not None and (not isinstance(curr_pos, (list, tuple)) or len(curr_pos) != 1)
            if len(curr) != 1 or wrong_pos:
                raise ValueError('curr and curr_pos given as lists must each hold exactly one (HW, B, C) tensor')
            curr, curr_pos = curr[0], None if curr_pos is None else curr_pos[0]
        if curr.dim() != 3 or memory.dim() != 3 or curr.shape[1] != memory.shape[1]:
            raise ValueError(f'curr (HW, B, C) and memory (M, B, Cmem) must share the batch size, '
                             f'got {tuple(curr.shape)} and {tuple(memory.shape)}')
        if memory_mask is not None and (memory_mask.dtype != torch.bool
                                        or tuple(memory_mask.shape) != (memory.shape[1], memory.shape[0])):
            raise ValueError(f'memory_mask must be None or (B, M) = ({memory.shape[1]}, {memory.shape[0]}) bool, got '
                             f'{tuple(memory_mask.shape)} {memory_mask.dtype}')
        output = curr
        if self.pos_enc_at_input and curr_pos is not None:
            output = output + 0.1 * curr_pos
        if self.batch_first:
            output, memory = output.transpose(0, 1), memory.transpose(0, 1)
            curr_pos = None if curr_pos is None else curr_pos.transpose(0, 1)
            memory_pos = None if memory_pos is None else memory_pos.transpose(0, 1)
        for layer in self.layers:
            # only RoPE cross attention knows which keys are object pointers
            rope = isinstance(layer.cross_attn_image, RoPEAttention)
            kwargs = {'num_k_exclude_rope': num_obj_ptr_tokens} if rope else {}
            output = layer(output, memory, pos=memory_pos, query_pos=curr_pos, memory_mask=memory_mask, **kwargs)
        output = self.norm(output)
        return output.transpose(0, 1) if self.batch_first else output
