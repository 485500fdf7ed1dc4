"""Tests for custom components."""
