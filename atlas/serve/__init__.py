"""``atlas serve``: the daemon and what only it runs (see README.md in this folder)."""
