"""``atlas serve``: the daemon and what only it runs (atlas/README.md describes each module)."""
