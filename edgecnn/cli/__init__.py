"""The `edgecnn` command line. It sits on top of everything; nothing imports it."""
