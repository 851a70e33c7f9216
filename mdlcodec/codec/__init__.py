"""SAE latents as bits: quantiser, entropy tables, activity and value coding (ANS bitstream), the
.mdlc container (its format docstring is the specification), and encoding/decoding files from
arrays. Knows no terminal and opens no dataset: callers pass arrays (or tensors and batches, turned
into arrays by data.inmemory.as_rows). May import core, data.inmemory, theory and models (an SAE's
encoder and decoder, and SAE objects of the peer libraries converted by models.peers)."""

from mdlcodec.codec.codec import Codec
from mdlcodec.codec.decoder import Decoder
from mdlcodec.codec.entropy_model import EntropyModel
from mdlcodec.codec.files import decode_file, decode_range, encode_codes_file, encode_file, inspect_file, payload_bits
from mdlcodec.codec.parallel import RowSource
from mdlcodec.codec.precision import coarsest_step, default_step, quantised_mse
from mdlcodec.codec.quantiser import Quantiser
from mdlcodec.codec.scale import DataStats, scale_warning
from mdlcodec.codec.sparse import SparseCodes, SparseLatents

__all__ = ["Codec", "Decoder", "EntropyModel", "Quantiser", "SparseCodes", "encode_file", "encode_codes_file", "decode_file", "decode_range", "RowSource",
           "inspect_file", "payload_bits", "coarsest_step", "default_step", "quantised_mse", "SparseLatents", "DataStats",
           "scale_warning"]
