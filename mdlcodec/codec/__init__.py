"""SAE latents as bits, in rooms by job:

- ``format/``: the .mdlc file: ``container.py`` (its docstring is the specification: header, model
  section, chunks, footer index) and ``bitstream.py`` (a chunk's symbols for each format version);
- ``entropy/``: the entropy coding: ``entropy_model.py`` (the tables, counts to probabilities by
  one integer rule), ``occupancy.py`` / ``occupancy_tree.py`` (format v3's activity), ``activity.py``
  (versions 1 and 2), ``hierarchy.py`` (feature forests, Chow-Liu);
- ``rate/``: the choice of quantisation: ``quantiser.py``, ``precision.py`` (the coarsest step
  meeting a tolerance), ``steps.py`` (per-feature steps, the fast squared error), ``rdo.py`` and
  ``rd_fit.py`` (rate-distortion optimised encoding and its fit), ``decoder_code.py`` and
  ``two_part.py`` (the two-part code's coded decoder rows);
- here: the ``Codec`` object (``codec.py``; its tables files ``tables_file.py``), the ``Decoder``,
  sparse latents and codes, the SAE run in batches, file encode/decode on arrays and random access
  (``files.py``; the output a file may expand to, ``expansion.py``; decoded latents as a CSR .npz
  written chunk by chunk, ``latents_npz.py``), chunk tasks in local processes or on a Dask cluster (``parallel.py``).

Knows no terminal and opens no dataset: callers pass arrays (or tensors and batches, turned into
arrays by data.inmemory.as_rows). May import core, data.inmemory, theory and models (an SAE's
encoder and decoder, and SAE objects of the peer libraries converted by models.peers)."""

from mdlcodec.codec.codec import Codec
from mdlcodec.codec.decoder import Decoder
from mdlcodec.codec.entropy.entropy_model import EntropyModel
from mdlcodec.codec.files import decode_file, decode_range, encode_codes_file, encode_file, inspect_file, payload_bits
from mdlcodec.codec.parallel import RowSource
from mdlcodec.codec.rate.precision import coarsest_step, default_step, quantised_mse
from mdlcodec.codec.rate.quantiser import Quantiser
from mdlcodec.codec.scale import DataStats, scale_warning
from mdlcodec.codec.sparse import SparseCodes, SparseLatents

__all__ = ["Codec", "Decoder", "EntropyModel", "Quantiser", "SparseCodes", "encode_file", "encode_codes_file", "decode_file", "decode_range", "RowSource",
           "inspect_file", "payload_bits", "coarsest_step", "default_step", "quantised_mse", "SparseLatents", "DataStats",
           "scale_warning"]
