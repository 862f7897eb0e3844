"""Simulator tests: the protocol machines on a virtual clock."""
