"""anyio adapters: the only place with sockets, tasks and clocks."""
