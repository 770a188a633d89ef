"""Small, single-purpose widgets of the workbench."""
