"""The one training loop and its data-parallel helpers."""
