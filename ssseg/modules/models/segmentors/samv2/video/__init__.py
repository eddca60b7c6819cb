"""The SAMV2 video layer: frames decoded on demand, the per-video inference state, the video predictor, and live
sources (camera, URL, file) for its stream mode."""
from .frames import FrameIndexError, VideoFrames
from .livesource import StreamDroppedError, VideoStream
from .predictor import SAMV2VideoPredictor
from .state import VideoStateError

__all__ = ['FrameIndexError', 'SAMV2VideoPredictor', 'StreamDroppedError', 'VideoFrames', 'VideoStateError',
           'VideoStream']
