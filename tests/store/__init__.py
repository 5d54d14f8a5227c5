"""Tests of `digest.store`."""
