"""Tests of `digest.sources`."""
