"""Tests of `digest.topics`."""
