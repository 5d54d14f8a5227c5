"""Tests of `digest.compose`."""
