"""MiDasheng Audio model service: sound event detection and audio understanding over HTTP."""

__version__ = "0.1.0"
