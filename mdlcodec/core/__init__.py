"""The shared core, below every other layer: typed errors (``errors``), atomic writes of files,
text and figures (``atomic``), one run at a time in an output folder (``lock``), feature-forest checks (``forest``), progress reporting
(``progress``) and run metadata (``runinfo``). Imports nothing from mdlcodec outside core."""
