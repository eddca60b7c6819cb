"""ssseg: a config-driven PyTorch segmentation toolbox (SAM 2 / SAM 2.1 as SAMV2)."""
__version__ = '0.1.0'
