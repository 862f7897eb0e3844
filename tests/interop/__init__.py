"""Interop tests: the real JavaScript PeerPigeon (from npm) against each other and against us."""
