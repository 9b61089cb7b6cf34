"""Domains (bundled digits, generated shifts, torchvision sets, image folders) and the feeds that batch them."""
