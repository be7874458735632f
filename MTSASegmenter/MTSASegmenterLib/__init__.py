"""MTSASegmenterLib: the core of MTSASegmenter (MTSA-Net GTV segmentation + EGFR), free of Qt and of Slicer."""

__version__ = "0.1.0"
