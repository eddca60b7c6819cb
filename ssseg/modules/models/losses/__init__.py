"""Training losses, registered in ``LOSSES`` (``BuildLoss``)."""
from .samv2loss import SAMV2MultiStepLoss, diceloss, iouloss, sigmoidfocalloss

__all__ = ['SAMV2MultiStepLoss', 'diceloss', 'iouloss', 'sigmoidfocalloss']
