"""Tests of `digest.config`."""
