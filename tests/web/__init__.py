"""Tests of `digest.web`."""
