"""FastAGI fallback: the same decisions as the ARI app when it is not connected (REL-1)."""
