"""Evaluating SAMV2 on one's own annotated images and videos: mIoU for a click and a box, J&F on videos."""
