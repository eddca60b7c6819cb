"""SAMV2 configs: one file per published checkpoint, each exposing ``SEGMENTOR_CFG``."""
