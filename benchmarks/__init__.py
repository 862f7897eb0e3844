"""Benchmarks comparing peerpigeon with the JavaScript reference (run as scripts)."""
