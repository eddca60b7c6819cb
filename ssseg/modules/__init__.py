from .models import BuildSegmentor, BuildBackbone, BuildPositionEncoding, BuildTransformer, BuildHead
