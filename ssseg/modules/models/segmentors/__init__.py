from .builder import SEGMENTORS, BuildSegmentor
