"""Operator tools for a deployed (or twin) stage: `python -m admin.apikey`."""
