"""The registries: one kind of thing each, filled from their own locations whatever was imported before."""
import subprocess
import sys
import textwrap

import pytest

from ssseg.modules.models.registries import (
    ATTENTIONS,
    BACKBONES,
    CONV_BLOCKS,
    HEADS,
    NECKS,
    POSITIONAL_ENCODINGS,
    SEGMENTORS,
    TRANSFORMER_LAYERS,
    TRANSFORMERS,
)

CONTENTS = [
    (SEGMENTORS, {'SAMV2'}),
    (HEADS, {'PromptEncoder', 'MaskDecoder', 'MemoryEncoder'}),
    (BACKBONES, {'Hiera', 'SAMV2ImageEncoder'}),
    (NECKS, {'FpnNeck'}),
    (POSITIONAL_ENCODINGS, {'PositionEmbeddingSine', 'PositionEmbeddingRandom'}),
    (ATTENTIONS, {'Attention', 'RoPEAttention'}),
    (TRANSFORMER_LAYERS, {'TwoWayAttentionBlock', 'MemoryAttentionLayer'}),
    (TRANSFORMERS, {'TwoWayTransformer', 'MemoryAttention'}),
    (CONV_BLOCKS, {'MaskDownSampler', 'CXBlock', 'Fuser'}),
]


@pytest.mark.parametrize('registry, names', CONTENTS, ids=[registry.name for registry, _ in CONTENTS])
def test_each_registry_holds_one_kind(registry, names):
    registry.import_from_location()
    assert set(registry.module_dict) == names


def test_building_does_not_depend_on_import_order():
    """In a fresh process: the public builder first, then a brick's, then an unknown type's error."""
    code = textwrap.dedent("""
        from ssseg.modules import BuildHead, BuildSegmentor
        from ssseg.modules.utils import loadsegmentorcfg
        print(type(BuildSegmentor(loadsegmentorcfg('samv21_hiera_tiny'))).__name__)
        from ssseg.modules.models.registries import BuildConvBlock
        print(type(BuildConvBlock({'type': 'CXBlock', 'dim': 8})).__name__)
        try:
            BuildHead({'type': 'MaskDecodr'})
        except ValueError as error:
            print(str(error).split('known: ')[1])
    """)
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
    assert result.stdout.split('\n')[:3] == ['SAMV2', 'CXBlock', "['MaskDecoder', 'MemoryEncoder', 'PromptEncoder']"]
