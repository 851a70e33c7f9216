"""The .mdlc file format: the container (magic, version, CRC-checked header, model section, chunks,
footer index; ``container.py``'s docstring is the specification) and the bitstream of one chunk
(``bitstream.py``: which symbols a chunk codes, in which order, for each format version). Imports
the entropy coding (``codec.entropy``) and the sparse codes, nothing of the rate choice."""
