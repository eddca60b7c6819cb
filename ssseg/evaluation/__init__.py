"""Evaluating SAMV2 on one's own annotated images and videos: mIoU for a click and a box, J&F on videos."""
from .evaluate import evaluateimages, evaluatevideos, scoringplan
from .metrics import boundarymap, centerclick, fmeasure, jaccard, maskbox, maskiou

__all__ = ['boundarymap', 'centerclick', 'evaluateimages', 'evaluatevideos', 'fmeasure', 'jaccard', 'maskbox',
           'maskiou', 'scoringplan']
