from . import positionencoding
