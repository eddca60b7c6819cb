"""The opt-in compiled path of SAMV2: ``torch.compile`` of its four heavy modules, in place.

``nn.Module.compile`` keeps each module's parameters and names, so Meta's checkpoints load unchanged
and ``state_dict()`` is the eager one. The image encoder sees one fixed shape (a frame or an image of
S x S) and is compiled for it. Memory attention, the memory encoder and the mask decoder are compiled
with dynamic shapes: the number of objects (or prompts), of points and of memory tokens are symbols, so a
new count reuses the compiled code instead of recompiling. torch specializes sizes 0 and 1, so one object
(or one prompt) and several are two compilations, each made once.
"""
import torch.fx.experimental._config as shapeconfig
import torch.nn as nn

# (module attribute, compiled with dynamic shapes)
COMPILED_MODULES = (('image_encoder', False), ('memory_attention', True), ('memory_encoder', True),
                    ('sam_mask_decoder', True))


def compilemodules(model: nn.Module) -> None:
    """Compile ``model``'s image encoder, memory attention, memory encoder and mask decoder in place.

    Args:
        model: a SAMV2 (any module with those four attributes). Compilation itself happens at each module's
            first call, for the device and dtypes it is then called with (inductor on CPU and CUDA).
    Returns:
        None.
    """
    # sizes that happen to be equal (2 objects, 2 prompt tokens) must not share a symbol, or a new count recompiles
    shapeconfig.use_duck_shape = False
    for name, dynamic in COMPILED_MODULES:
        getattr(model, name).compile(dynamic=dynamic)
