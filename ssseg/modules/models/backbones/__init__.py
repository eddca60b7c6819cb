"""Image backbones: the Hiera trunk, the SAM 2 image encoder (trunk + FPN neck) and the neck."""
