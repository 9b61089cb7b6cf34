"""The one size limit on what users upload, checkpoints and images alike."""

from __future__ import annotations

# Largest upload, in Streamlit's megabytes (MiB); .streamlit/config.toml gives the server the same
# server.maxUploadSize (a test checks). The largest registered model (resnet18) is 45 MB in F32,
# a 50-megapixel photo far less as JPEG, and the largest header safetensors reads (100 MB) fits.
MAX_UPLOAD_MB = 100


def check_upload_size(data: bytes, name: str) -> None:
    """ValueError when ``data`` is larger than MAX_UPLOAD_MB (what the server lets through)."""
    if len(data) > MAX_UPLOAD_MB * 1024 * 1024:
        mb = len(data) / 1024 / 1024
        raise ValueError(f"{name} is {mb:,.1f} MB, more than the {MAX_UPLOAD_MB} MB vizcore reads")
