"""Sans-IO state machines of the peerpigeon protocol: bytes and `now` in, actions and events out.

Nothing in this package performs I/O, reads a clock or uses global randomness.
"""
