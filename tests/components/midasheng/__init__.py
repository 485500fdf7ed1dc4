"""Tests for the MiDasheng Audio integration."""
