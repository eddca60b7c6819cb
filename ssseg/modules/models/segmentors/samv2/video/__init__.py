"""The SAMV2 video layer: frames decoded on demand, the per-video inference state, and the video predictor."""
from .frames import FrameIndexError, VideoFrames
from .predictor import SAMV2VideoPredictor
from .state import VideoStateError

__all__ = ['FrameIndexError', 'SAMV2VideoPredictor', 'VideoFrames', 'VideoStateError']
