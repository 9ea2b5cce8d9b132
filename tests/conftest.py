"""Shared pytest setup: run from anywhere, find the repository root, keep plotting headless."""
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("CHIMLE_ROOT", str(ROOT))
