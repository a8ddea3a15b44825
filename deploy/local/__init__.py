"""Process mode: run the servers as local processes, no cluster (see launcher.py)."""
