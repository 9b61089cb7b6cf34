"""vizcore: visual analytics for small CNNs and domain adaptation (no UI code here)."""

__version__ = "0.1.0"
