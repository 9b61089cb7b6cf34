"""Paths the tests share, wherever their file sits under tests/."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the project's root
APP = str(ROOT / "app.py")  # the dashboard's entry point, for AppTest and the browser
