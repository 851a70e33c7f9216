"""Choosing the quantisation, the rate side of the codec: the uniform quantiser (``quantiser.py``),
the coarsest step meeting a tolerance (``precision.py``), per-feature steps (``steps.py``),
rate-distortion optimised encoding (``rdo.py``) and its lambda fitted to a tolerance
(``rd_fit.py``), and the two-part code's decoder rows (``decoder_code.py``: coding;
``two_part.py``: their precision chosen with the latents' step)."""
