"""The drawing helpers at their public import path; they live in :mod:`.outputs.visualization`."""
from .outputs.visualization import (
    saveoverlay,
    show_anns,
    show_box,
    show_mask,
    show_masks,
    show_points,
    showanns,
    showbox,
    showmask,
    showmasks,
    showpoints,
)

__all__ = ['showmask', 'showpoints', 'showbox', 'showmasks', 'showanns', 'saveoverlay',
           'show_mask', 'show_points', 'show_box', 'show_masks', 'show_anns']
