"""Where the engine meets other tools: nbgrader (autograde plugin, its API, release), the in-cell
checker the notebooks import, the demo course, and exports for students and Gradescope."""
