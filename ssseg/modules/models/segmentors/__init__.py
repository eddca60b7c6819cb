"""Segmentors (SAMV2) and their heads."""
