"""CLIP embedding server: scores generated images against option images for L3."""
