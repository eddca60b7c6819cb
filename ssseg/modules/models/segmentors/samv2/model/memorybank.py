"""Reading the memory bank of SAMV2: which stored frames a frame attends to, as tokens for memory attention.

A frame output is a dict with ``maskmem_features`` (B, Cmem, h, w) (float32 or bfloat16),
``maskmem_pos_enc`` [(B, Cmem, h, w)] and ``obj_ptr`` (B, C); see :mod:`.trackstep` for the layout
of features and of ``output_dict``. A memory released by its owner (``maskmem_features`` None) is
asked back from the ``rebuildmemory(frame_idx, output)`` callable the caller passes in.
"""
import torch

from ssseg.modules.models.bricks.positionencoding import sineencode1d
from ssseg.modules.utils.checks import shapeof


def _closestcondframes(frame_idx, cond_outputs, max_cond_frames):
    """Split conditioning outputs into (selected, unselected) dicts: at most ``max_cond_frames`` (-1: all).

    The nearest frame before ``frame_idx`` and the nearest at or after it come first, then the others
    by temporal distance (ties keep the dict's order).
    """
    if max_cond_frames == -1 or len(cond_outputs) <= max_cond_frames:
        return cond_outputs, {}
    if max_cond_frames < 2:
        raise ValueError(f'max_cond_frames_in_attn must be -1 or at least 2, got {max_cond_frames}')
    before = max((t for t in cond_outputs if t < frame_idx), default=None)
    after = min((t for t in cond_outputs if t >= frame_idx), default=None)
    chosen = [t for t in (before, after) if t is not None]
    rest = sorted((t for t in cond_outputs if t not in chosen), key=lambda t: abs(t - frame_idx))
    chosen += rest[:max_cond_frames - len(chosen)]
    selected = {t: cond_outputs[t] for t in chosen}
    unselected = {t: out for t, out in cond_outputs.items() if t not in selected}
    return selected, unselected


class SAMV2MemoryMixin:
    """Memory-conditioned features of SAM 2 / SAM 2.1 for an ``nn.Module`` with SAMV2's options and parameters."""

    @staticmethod
    def _tomap(tokens, size):
        """(h*w, B, C) tokens -> (B, C, h, w) view."""
        return tokens.permute(1, 2, 0).view(tokens.size(1), tokens.size(2), *size)

    # ------------------------------------------------------------------ memory-conditioned features
    def _memoryconditionedfeatures(self, frame_idx, is_init_cond_frame, vision_feat, vision_pos, feat_size,
                                   output_dict, num_frames, track_in_reverse, rebuildmemory=None):
        """Fuse the lowest-level (h*w, B, C) features with the memory bank -> (B, C, h, w)."""
        batch_size = vision_feat.shape[1]
        if self.num_maskmem == 0:
            return self._tomap(vision_feat, feat_size)
        if is_init_cond_frame:
            if self.directly_add_no_mem_embed:
                return self._tomap(vision_feat + self.no_mem_embed, feat_size)
            if self.mem_dim != self.hidden_dim:
                raise ValueError(f'directly_add_no_mem_embed=False needs memories as wide as the features '
                                 f'(mem_dim == hidden_dim), got {self.mem_dim} and {self.hidden_dim}')
            # a single placeholder memory token, so attention never sees an empty memory
            memory = self.no_mem_embed.expand(1, batch_size, self.mem_dim)
            memory_pos = self.no_mem_pos_enc.expand(1, batch_size, self.mem_dim)
            num_ptr_tokens, memory_mask = 0, None
        elif isinstance(output_dict, (list, tuple)):
            memory, memory_pos, num_ptr_tokens, memory_mask = self._gatherobjectsmemory(
                frame_idx, vision_feat, output_dict, num_frames, track_in_reverse, rebuildmemory)
        else:
            memory, memory_pos, num_ptr_tokens = self._gathermemory(frame_idx, batch_size, vision_feat, output_dict,
                                                                    num_frames, track_in_reverse, rebuildmemory)
            memory_mask = None
        if self.compile_modules:
            memory, memory_pos, memory_mask, num_ptr_tokens = self._padforcompiled(
                memory, memory_pos, memory_mask, num_ptr_tokens, vision_feat.shape[0])
        fused = self.memory_attention(curr=[vision_feat], curr_pos=[vision_pos], memory=memory,
                                      memory_pos=memory_pos, num_obj_ptr_tokens=num_ptr_tokens,
                                      memory_mask=memory_mask)
        return self._tomap(fused, feat_size)

    @staticmethod
    def _padforcompiled(memory, memory_pos, memory_mask, num_ptr_tokens, frame_tokens):
        """Memory as compiled attention takes it, ``(memory, memory_pos, memory_mask, num_ptr_tokens)``: always
        with a mask, at least two spatial frames and two pointer tokens (masked zeros added where fewer), since
        torch compiles the sizes 0 and 1 apart from larger ones."""
        batch_size = memory.shape[1]
        if memory_mask is None:
            memory_mask = torch.ones(batch_size, memory.shape[0], dtype=torch.bool, device=memory.device)
        num_spatial = memory.shape[0] - num_ptr_tokens
        spatial_pad = frame_tokens if num_spatial == frame_tokens else 0
        ptr_pad = max(2 - num_ptr_tokens, 0)
        if not spatial_pad and not ptr_pad:
            return memory, memory_pos, memory_mask, num_ptr_tokens

        def padded(x, fill):
            dim = 0 if x.dim() == 3 else 1  # tokens (M, B, C) or mask (B, M)
            spatial, ptrs = x.split([num_spatial, num_ptr_tokens], dim)
            pads = [x.new_full(x.shape[:dim] + (n,) + x.shape[dim + 1:], fill) for n in (spatial_pad, ptr_pad)]
            return torch.cat([spatial, pads[0], ptrs, pads[1]], dim)
        return padded(memory, 0), padded(memory_pos, 0), padded(memory_mask, False), num_ptr_tokens + ptr_pad

    def _memoryslots(self, frame_idx, selected, unselected, non_cond_outputs, track_in_reverse):
        """``[(temporal slot, frame index, output)]``: the conditioning frames (slot 0), then the recent
        frames in slots 1 .. num_maskmem - 1, oldest first."""
        slots = [(0, t, out) for t, out in selected.items()]
        stride = 1 if self.training else self.memory_temporal_stride_for_eval
        sign = -1 if track_in_reverse else 1
        # going backwards in time is going forwards in negated frame indices
        forward_idx = sign * frame_idx
        for t_pos in range(1, self.num_maskmem):
            t_rel = self.num_maskmem - t_pos
            if t_rel == 1:
                prev_idx = forward_idx - 1
            else:
                # the nearest multiple of stride at least two frames back, then further strides back
                prev_idx = (forward_idx - 2) // stride * stride - (t_rel - 2) * stride
            prev_idx *= sign
            out = non_cond_outputs.get(prev_idx)
            if out is None:
                # an unselected conditioning frame among the recent ones still serves as a recent memory
                out = unselected.get(prev_idx)
            if out is not None:
                slots.append((t_pos, prev_idx, out))
        return slots

    @staticmethod
    def _memoryof(frame_idx, out, rebuildmemory):
        """(maskmem_features, maskmem_pos_enc) of one stored output, asking ``rebuildmemory`` for a released one."""
        features = out.get('maskmem_features')
        if features is None and rebuildmemory is not None:
            features = rebuildmemory(frame_idx, out)
        if features is None or not out.get('maskmem_pos_enc'):
            raise ValueError('output_dict: every stored frame output needs maskmem_features and maskmem_pos_enc '
                             '(run trackstep with run_mem_encoder=True, or encodenewmemory, before storing it), or '
                             'trackstep needs a rebuildmemory callable that encodes a released one again')
        return features, out['maskmem_pos_enc']

    def _gathermemory(self, frame_idx, batch_size, vision_feat, output_dict, num_frames, track_in_reverse,
                      rebuildmemory=None):
        """Memory tokens (M, B, Cmem), their encodings (M, B, Cmem) and the number of pointer tokens at the end."""
        device = vision_feat.device
        cond_outputs, non_cond_outputs = self._checkoutputdict(output_dict)
        selected, unselected = _closestcondframes(frame_idx, cond_outputs, self.max_cond_frames_in_attn)
        slots = self._memoryslots(frame_idx, selected, unselected, non_cond_outputs, track_in_reverse)
        feats, poses = [], []
        for _, t, out in slots:
            features, pos_enc = self._memoryof(t, out, rebuildmemory)
            feats.append(features.to(device, non_blocking=True).flatten(2).permute(2, 0, 1))
            poses.append(pos_enc[-1].to(device).flatten(2).permute(2, 0, 1))
        num_ptr_tokens = 0
        if self.use_obj_ptrs_in_encoder:
            ptrs, ptr_pos = self._gatherobjptrs(frame_idx, batch_size, device, selected, unselected,
                                                non_cond_outputs, num_frames, track_in_reverse)
            if ptrs is not None:
                feats.append(ptrs)
                poses.append(ptr_pos)
                num_ptr_tokens = ptrs.shape[0]
        # one copy each; bfloat16 memories are promoted by the concatenation with float32 pointers
        memory = torch.cat(feats, dim=0)
        memory = memory.to(torch.promote_types(memory.dtype, vision_feat.dtype))
        memory_pos = torch.cat(poses, dim=0)
        # indexed by Python ints: a list index would be copied to the device, a host sync on CUDA
        tpos = torch.stack([self.maskmem_tpos_enc[self.num_maskmem - t_pos - 1] for t_pos, _, _ in slots])
        memory_pos = memory_pos.to(torch.promote_types(memory_pos.dtype, tpos.dtype))
        # temporal encodings added in place to the spatial part (a fresh tensor from cat)
        spatial = memory_pos[:memory_pos.shape[0] - num_ptr_tokens]
        spatial.view(len(slots), -1, *spatial.shape[1:]).add_(tpos)
        return memory, memory_pos, num_ptr_tokens

    def _gatherobjectsmemory(self, frame_idx, vision_feat, output_dicts, num_frames, track_in_reverse,
                             rebuildmemory=None):
        """Each object's memory from its own bank, batched: ``(memory, memory_pos, num_ptr_tokens, memory_mask)``.

        Object b's spatial memories fill the first rows of its column and its pointer tokens the first rows of
        the trailing pointer block; rows beyond them are zero padding, False in the (B, M) ``memory_mask`` (None
        when every object has the same number of each, so nothing is padded). Attention is blind to the order of
        keys, and RoPE rotates every spatial frame alike, so padding changes no object's result.
        """
        if len(output_dicts) != vision_feat.shape[1]:
            raise ValueError(f'output_dict given as a list needs one memory bank per object '
                             f'(B={vision_feat.shape[1]}), got {len(output_dicts)}')
        parts = [self._gathermemory(frame_idx, 1, vision_feat, output_dict, num_frames, track_in_reverse,
                                    rebuildmemory) for output_dict in output_dicts]
        layouts = [(memory.shape[0] - num_ptr, num_ptr) for memory, _, num_ptr in parts]
        if len(set(layouts)) == 1:
            return torch.cat([p[0] for p in parts], 1), torch.cat([p[1] for p in parts], 1), layouts[0][1], None
        num_spatial = max(spatial for spatial, _ in layouts)
        num_ptr_tokens = max(num_ptr for _, num_ptr in layouts)
        first = parts[0][0]
        memory = first.new_zeros(num_spatial + num_ptr_tokens, len(parts), first.shape[2])
        memory_pos = parts[0][1].new_zeros(memory.shape)
        memory_mask = torch.zeros(len(parts), memory.shape[0], dtype=torch.bool, device=first.device)
        for b, ((part, part_pos, _), (spatial, num_ptr)) in enumerate(zip(parts, layouts)):
            for target, source in ((slice(0, spatial), slice(0, spatial)),
                                   (slice(num_spatial, num_spatial + num_ptr), slice(spatial, spatial + num_ptr))):
                memory[target, b] = part[source, 0]
                memory_pos[target, b] = part_pos[source, 0]
                memory_mask[b, target] = True
        return memory, memory_pos, num_ptr_tokens, memory_mask

    def _gatherobjptrs(self, frame_idx, batch_size, device, selected, unselected, non_cond_outputs, num_frames,
                       track_in_reverse):
        """Object-pointer tokens (N, B, Cmem) and their temporal encodings, or (None, None) when there are none."""
        max_ptrs = min(num_frames, self.max_obj_ptrs_in_encoder)
        if not self.training and self.only_obj_ptrs_in_the_past_for_eval:
            in_past = (lambda t: t >= frame_idx) if track_in_reverse else (lambda t: t <= frame_idx)
            ptr_cond = {t: out for t, out in selected.items() if in_past(t)}
        else:
            ptr_cond = selected
        sign = -1 if track_in_reverse else 1
        if self.use_signed_tpos_enc_to_obj_ptrs:
            positions = [(frame_idx - t) * sign for t in ptr_cond]
        else:
            positions = [abs(frame_idx - t) for t in ptr_cond]
        ptrs = [out['obj_ptr'] for out in ptr_cond.values()]
        for t_diff in range(1, max_ptrs):
            t = frame_idx - t_diff * sign
            if t < 0 or t >= num_frames:
                break
            out = non_cond_outputs.get(t, unselected.get(t))
            if out is not None:
                positions.append(t_diff)
                ptrs.append(out['obj_ptr'])
        if not ptrs:
            return None, None
        obj_ptrs = torch.stack(ptrs, dim=0)
        hidden = obj_ptrs.shape[-1]
        if self.add_tpos_enc_to_obj_ptrs:
            # distances normalized by the window; a one-frame window (max_ptrs 1) would divide by zero
            scale = max(max_ptrs - 1, 1)
            tpos_dim = hidden if self.proj_tpos_enc_in_obj_ptrs else self.mem_dim
            # a non-blocking copy: the host does not wait for the device's queue (pageable memory is staged first)
            distances = torch.tensor(positions, dtype=torch.float32).to(device, non_blocking=True)
            obj_pos = sineencode1d(distances / scale, dim=tpos_dim)
            obj_pos = self.obj_ptr_tpos_proj(obj_pos).unsqueeze(1).expand(-1, batch_size, self.mem_dim)
        else:
            obj_pos = obj_ptrs.new_zeros(len(positions), batch_size, self.mem_dim)
        if self.mem_dim < hidden:
            # a wide pointer becomes hidden // mem_dim consecutive memory tokens
            split = hidden // self.mem_dim
            obj_ptrs = obj_ptrs.reshape(-1, batch_size, split, self.mem_dim).permute(0, 2, 1, 3).flatten(0, 1)
            obj_pos = obj_pos.repeat_interleave(split, dim=0)
        return obj_ptrs, obj_pos

    @staticmethod
    def _checkoutputdict(output_dict):
        keys = {'cond_frame_outputs', 'non_cond_frame_outputs'}
        if not isinstance(output_dict, dict) or not keys <= set(output_dict):
            got = sorted(output_dict) if isinstance(output_dict, dict) else shapeof(output_dict)
            raise ValueError('output_dict must be a dict with "cond_frame_outputs" and "non_cond_frame_outputs" '
                             f'({{frame_idx: output}} each), got {got}')
        cond_outputs = output_dict['cond_frame_outputs']
        if not cond_outputs:
            raise ValueError('output_dict["cond_frame_outputs"] is empty: a frame tracked from memory needs at least '
                             'one conditioning (prompted) frame; use is_init_cond_frame=True on the first prompted one')
        return cond_outputs, output_dict['non_cond_frame_outputs']
