"""Modal screens over the workbench."""
