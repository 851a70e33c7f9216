"""The paper's toy figures with the real codec (feature splitting, Figure 3; hierarchy, Figure 5),
the hierarchy report of a model, and the demo on the embedded default. May import every layer
below cli."""
