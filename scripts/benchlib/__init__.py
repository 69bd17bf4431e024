"""The side-by-side upload benchmark behind ``scripts/bench.py`` (issue 6)."""
