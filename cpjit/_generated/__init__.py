"""Generated stencil tables (written by cpjit/_build at install time; not in git)."""
