"""What the three SAMV2 predictors share: the model choice, the device, the CPU heap hold and progress bars."""
import os
import sys
from typing import Any, Optional, Union

import torch

from ssseg.modules.utils.configs import loadsegmentorcfg
from ssseg.modules.utils.heap import holdheapfor

from .modelchoice import choosemodel


def showprogress(progress: Optional[bool]) -> bool:
    """Whether to draw a progress bar.

    Args:
        progress: a bool, or None for "only when stderr is a terminal".
    Returns:
        ``progress`` when it is a bool, else whether stderr is a terminal.
    """
    return sys.stderr.isatty() if progress is None else bool(progress)


class SAMV2PredictorBase:
    """Base of the SAMV2 predictors. Subclasses set ``self.model`` with :meth:`_usemodel` (or expose it)."""

    @classmethod
    def fromconfig(cls, name_or_cfg: Union[str, os.PathLike, dict], **kwargs: Any) -> 'SAMV2PredictorBase':
        """A predictor on the model of a config.

        Args:
            name_or_cfg: a shipped name (e.g. 'samv21_hiera_tiny'), a path to a ``.py`` config file, or a config dict.
            kwargs: the constructor's other arguments.
        Returns:
            An instance of this class.
        Raises:
            FileNotFoundError, TypeError, ValueError: as :func:`loadsegmentorcfg` for a name or path that does not
                load, and the constructor's errors.
        """
        if isinstance(name_or_cfg, (str, os.PathLike)):
            name_or_cfg = loadsegmentorcfg(name_or_cfg)
        return cls(samv2_cfg=name_or_cfg, **kwargs)

    @property
    def device(self) -> torch.device:
        """The device the model runs on.

        Returns:
            The model's torch.device.
        """
        return self.model.device

    def _usemodel(self, model, samv2_cfg, device, buildoptions, flags, video=False):
        """Choose (or take) the model; on a CPU, freed activations stay in the heap while this predictor lives."""
        self.model = choosemodel(model, samv2_cfg, device, video=video, buildoptions=buildoptions, flags=flags)
        if self.model.device.type == 'cpu':
            holdheapfor(self)  # consecutive calls reuse the buffers of the last instead of page-faulting anew
