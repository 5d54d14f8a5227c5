"""Tests of `digest.collect`."""
