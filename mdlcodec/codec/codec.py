"""A trained SAE as a codec: encoder, quantiser, entropy model and decoder, in memory.

    codec = Codec.fit(sae, train_x, step)       # tables from the training split's quantised latents
    data = codec.encode(x)                      # bytes of an .mdlc file
    x_hat = codec.decode(data)                  # [n, d_in] float32
    codes = codec.decode_latents(data)          # the quantised latents, exactly

The model's tables live beside its weights as ``codec.safetensors`` (quantiser steps and entropy
counts); a self-contained file carries the decoder and the tables in its model section.
"""

from __future__ import annotations

import io
import operator
import re
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import safetensors.numpy
import torch

from mdlcodec import __version__
from mdlcodec.codec.arrays import check_memory
from mdlcodec.codec.decoder import Decoder, check_activations, check_shape
from mdlcodec.codec.entropy.entropy_model import EntropyModel
from mdlcodec.codec.entropy.hierarchy import Hierarchy, chow_liu, prune_to_forest
from mdlcodec.codec.entropy.occupancy import ChunkTooLarge
from mdlcodec.codec.expansion import activation_bytes, check_expansion, latent_bytes
from mdlcodec.codec.format.bitstream import ChunkCoder, StreamError
from mdlcodec.codec.format.container import MAX_CHUNK_LATENTS, VERSION, Header, Reader, Writer, new_file_id
from mdlcodec.codec.rate.quantiser import Quantiser, RowError
from mdlcodec.codec.sae_batches import on_device, sae_batches
from mdlcodec.codec.scale import DataStats
from mdlcodec.codec.sparse import SparseCodes, SparseLatents
from mdlcodec.codec.tables_file import (
    TABLES_DIR,
    TABLES_FILE,
    check_section_header,
    entropy_fingerprint,
    read_rdo,
    read_tables,
    tables_arrays,
    tables_from_arrays,
    write_tables,
)
from mdlcodec.core.errors import CodecError, MdlcodecError, ModelError
from mdlcodec.data.inmemory import as_rows
from mdlcodec.models.peers import as_sae

DEFAULT_CHUNK = 4096
HIERARCHIES = ("auto", "flat", "chowliu")


class Codec:
    """``rdo_lambda``: None for plain encoding (the SAE's code, quantised), or the lambda (bits per
    unit of squared error summed over a sample's d_in values) of rate-distortion optimised encoding
    (``rdo.optimise_codes``, on ``device``). An encoder setting only, kept in the tables file's metadata:
    the files, their format and the decoder are the same either way. ``data_stats``: the SAE's training
    data's statistics for a codec without an encoder (``load(encoder=False)``); one with an encoder
    takes them from it (``data_stats``)."""

    def __init__(self, decoder: Decoder, quantiser: Quantiser, entropy_model: EntropyModel,
                 encoder: Callable[[np.ndarray], np.ndarray] | None = None, rdo_lambda: float | None = None,
                 device: str = "cpu", data_stats: DataStats | None = None):
        if not (decoder.d_sae == quantiser.d_sae == entropy_model.d_sae):
            raise ModelError("decoder, quantiser and entropy model disagree on the dictionary size")
        if rdo_lambda is not None and not (np.isfinite(rdo_lambda) and rdo_lambda > 0):
            raise ModelError(f"rdo_lambda is {rdo_lambda}, not a finite number > 0")
        self.decoder, self.quantiser, self.entropy_model, self.encoder = decoder, quantiser, entropy_model, encoder
        self.rdo_lambda, self.device, self._data_stats = rdo_lambda, device, data_stats
        self.chunk_coder = ChunkCoder(entropy_model)
        self.model_dir: Path | None = None  # the folder it was loaded from (Codec.load): its archived tables

    # -- construction -----------------------------------------------------------------------------
    @staticmethod
    def sae_sparse_encoder(sae, device: str = "cpu") -> Callable[[np.ndarray], SparseLatents]:
        """x [n, d_in] float32 -> SparseLatents (``sae.encode_sparse``) in the batches of ``sae_encoder``
        (``sae_batches.batch_rows``: the same matmuls, so bit for bit its nonzeros), padded to the widest batch:
        the codec's encoder. The matmul runs on ``device`` (cpu, cuda); only the active latents (values,
        indices) come back. The function carries ``data_stats``, the SAE's training data's (``Codec.data_stats``),
        and ``sae``, the SAE it runs."""
        sae = on_device(sae, device)

        def encode(x: np.ndarray) -> SparseLatents:
            out = []
            with torch.no_grad():
                for _, batch in sae_batches(sae, device, x):
                    out.append(tuple(t.cpu().numpy() for t in sae.encode_sparse(batch)))
            return SparseLatents.concat(out)
        encode.data_stats, encode.sae = DataStats.from_config(sae.cfg), sae
        return encode

    @staticmethod
    def sae_encoder(sae, device: str = "cpu") -> Callable[[np.ndarray], np.ndarray]:
        """x [n, d_in] float32 -> dense latents [n, d_sae] float32, in batches. For callers that need the
        dense matrix (tests comparing the two forms); the codec itself encodes with ``sae_sparse_encoder``."""
        sae = on_device(sae, device)

        def encode(x: np.ndarray) -> np.ndarray:
            out = []
            with torch.no_grad():
                for _, batch in sae_batches(sae, device, x):
                    out.append(sae.encode(batch).cpu().numpy())
            return np.concatenate(out) if out else np.zeros((0, sae.cfg.d_sae), np.float32)
        return encode

    @classmethod
    def fit(cls, sae, train_x: np.ndarray, step: float | np.ndarray, device: str = "cpu",
            hierarchy: str = "auto") -> "Codec":
        """Quantise the training split's latents with ``step`` and count them into an entropy model.

        sae: an mdlcodec SAE or any SAE object models.peers.as_sae converts (SAELens, SAEBench,
        sparsify, dictionary_learning, a dict of tensors). train_x [n, d_in]: an array (a np.memmap is
        read chunk by chunk), a tensor on any device and in any float dtype, or an iterable of batches
        (data.inmemory.as_rows). hierarchy: "auto" (a tree SAE's own forest, coded as a tree; flat for other SAEs), "flat",
        or "chowliu" (a Chow-Liu forest learned from the training codes, see ``hierarchy.py``)."""
        if hierarchy not in HIERARCHIES:
            raise ModelError(f"unknown hierarchy {hierarchy!r}; choose from {', '.join(HIERARCHIES)}")
        sae, train_x = as_sae(sae), as_rows(train_x, "training data")
        decoder = Decoder.from_sae(sae)
        step_arr = np.broadcast_to(np.asarray(step, np.float32), (decoder.d_sae,))
        quantiser = Quantiser(step_arr)
        encoder = cls.sae_sparse_encoder(sae, device)
        check_shape(train_x, decoder.d_in, "training data")
        parts = []
        for s in range(0, len(train_x), DEFAULT_CHUNK):  # checked and read chunk by chunk: a shard folder streams
            x = check_activations(train_x[s:s + DEFAULT_CHUNK], decoder.d_in, "training data")
            try:
                parts.append(quantiser.quantise_sparse(*encoder(x)))
            except RowError as e:
                raise CodecError(f"training data: {e.describe(s + e.row)}") from None
        return cls._fit_codes(sae, decoder, quantiser, SparseCodes.concat(parts), encoder, hierarchy)

    @classmethod
    def fit_latents(cls, sae, z_train: SparseLatents, step: float | np.ndarray, device: str = "cpu",
                    hierarchy: str = "auto") -> "Codec":
        """Codec.fit from the training split's SAE latents already computed (``sae_sparse_encoder``'s
        output for train_x): the same tables, without running the SAE again. For callers that fit
        several codecs (steps, tolerances) of one SAE on one split."""
        if hierarchy not in HIERARCHIES:
            raise ModelError(f"unknown hierarchy {hierarchy!r}; choose from {', '.join(HIERARCHIES)}")
        sae = as_sae(sae)
        decoder = Decoder.from_sae(sae)
        quantiser = Quantiser(np.broadcast_to(np.asarray(step, np.float32), (decoder.d_sae,)))
        try:
            codes = quantiser.quantise_sparse(*z_train)
        except RowError as e:
            raise CodecError(f"training data: {e.describe(e.row)}") from None
        return cls._fit_codes(sae, decoder, quantiser, codes, cls.sae_sparse_encoder(sae, device), hierarchy)

    @classmethod
    def _fit_codes(cls, sae, decoder: Decoder, quantiser: Quantiser, codes: SparseCodes, encoder,
                   hierarchy: str) -> "Codec":
        """The codec whose tables count the training split's quantised latents ``codes``."""
        forest, parents = None, cls.tree_parents(sae, hierarchy)
        if hierarchy == "chowliu":
            forest = chow_liu(codes)
        elif parents is not None:
            codes = prune_to_forest(codes, parents)
            try:
                forest = Hierarchy.count(codes, parents, "tree")
            except ValueError as e:
                raise ModelError(f"the tree SAE's forest cannot be coded as a tree ({e}); code it flat") from None
        return cls(decoder, quantiser, EntropyModel.fit(codes).with_hierarchy(forest), encoder)

    @staticmethod
    def tree_parents(sae, hierarchy: str = "auto") -> np.ndarray | None:
        """parents [d_sae] of the forest ``fit`` codes ``sae`` under as a tree: a tree SAE's own with
        hierarchy "auto", else None."""
        return sae.parents.cpu().numpy() if hierarchy == "auto" and hasattr(sae, "parents") else None

    def with_hierarchy(self, hierarchy: Hierarchy | None) -> "Codec":
        """This codec with its activity coded under ``hierarchy`` (None: flat); same decoder and quantiser."""
        other = Codec(self.decoder, self.quantiser, self.entropy_model.with_hierarchy(hierarchy), self.encoder,
                      self.rdo_lambda, self.device, self._data_stats)
        other.model_dir = self.model_dir
        return other

    def with_rdo(self, rdo_lambda: float | None) -> "Codec":
        """This codec encoding with rate-distortion optimisation at ``rdo_lambda`` (None: plain)."""
        other = Codec(self.decoder, self.quantiser, self.entropy_model, self.encoder, rdo_lambda, self.device,
                      self._data_stats)
        other.model_dir = self.model_dir
        return other

    def hierarchy_bits(self) -> float:
        """Bits of the hierarchy's tables in the two-part code (0 when flat), see Hierarchy.table_bits."""
        h = self.entropy_model.hierarchy
        return h.table_bits(self.entropy_model.n_samples) if h is not None else 0.0

    def tables_arrays(self) -> dict[str, np.ndarray]:
        return tables_arrays(self.quantiser, self.entropy_model)

    def _write_tables(self, path: Path, replace: bool = True) -> None:
        write_tables(path, self.quantiser, self.entropy_model, self.decoder.fingerprint(), self.rdo_lambda, replace)

    def save_tables(self, model_dir: str | Path, current: bool = True) -> Path:
        """Make these tables the model's current set, MODEL/codec.safetensors, and keep every set ever
        fitted in MODEL/tables/<entropy fingerprint>.safetensors (the set being replaced included),
        so that files coded with earlier tables still decode (``for_header`` finds them). Atomic.
        With ``current`` False only the archive gains the set (the model's current set stays)."""
        d = Path(model_dir)
        (d / TABLES_DIR).mkdir(exist_ok=True)
        archived = d / TABLES_DIR / f"{self.entropy_fingerprint}.safetensors"
        if not current:
            self._write_tables(archived, replace=False)
            return archived
        current = d / TABLES_FILE
        if current.exists():  # a set fitted before the archive existed: keep it too
            try:
                old = Codec(self.decoder, *read_tables(current, self.decoder))
            except MdlcodecError:
                old = None  # damaged or fitted for other weights: nothing a file of this SAE could need
            if old is not None:
                old._write_tables(d / TABLES_DIR / f"{old.entropy_fingerprint}.safetensors", replace=False)
        self._write_tables(archived, replace=False)
        self._write_tables(current)
        return current

    def archived(self, entropy_fingerprint: str) -> "Codec | None":
        """The codec with this SAE and the table set of that fingerprint from its model folder's
        archive (``save_tables``), or None (no folder, no such set, or a malformed name)."""
        if self.model_dir is None or not re.fullmatch(r"[0-9a-f]{32}", entropy_fingerprint or ""):
            return None
        path = self.model_dir / TABLES_DIR / f"{entropy_fingerprint}.safetensors"
        if not path.exists():  # one that is there but not a regular file is refused by _read_tables
            return None
        other = Codec(self.decoder, *read_tables(path, self.decoder), self.encoder, read_rdo(path),
                      self.device, self._data_stats)
        other.model_dir = self.model_dir
        return other if other.entropy_fingerprint == entropy_fingerprint else None

    @classmethod
    def load(cls, model_dir: str | Path, device: str = "cpu", tables: str | None = None,
             encoder: bool = True) -> "Codec":
        """An SAE directory with codec tables -> a codec that can encode and decode. ``tables``: the
        entropy fingerprint of a set in the folder's archive (``save_tables``) to load instead of
        the current one, as a file coded with it names in its header; the current set if absent.

        The codec holds one float32 W_dec [d_sae, d_in]: its decoder's array is the memory of its
        SAE's (``Decoder.from_sae(share=True)``; a cuda ``device`` moves the SAE and leaves the
        array). ``encoder`` False: no encoder and no torch SAE (only the decoder's tensors are read,
        ``models.io.load_sae_weights``): a codec that decodes and writes a file's header and model
        section, for the process that only writes the file of a parallel encode (its workers load
        their own) and for decoding."""
        from mdlcodec.models.io import load_sae, load_sae_weights

        if encoder:
            sae = load_sae(model_dir)
            decoder = Decoder.from_sae(sae, share=True)
        else:
            cfg, w = load_sae_weights(model_dir, ("W_dec", "b_dec"))
            decoder = Decoder.from_tensors(w["W_dec"], w["b_dec"], cfg.input_scale, share=True)
        path = Path(model_dir) / TABLES_FILE
        if tables is not None and re.fullmatch(r"[0-9a-f]{32}", tables):
            archived = Path(model_dir) / TABLES_DIR / f"{tables}.safetensors"
            path = archived if archived.exists() else path
        if not path.exists():
            raise ModelError(f"{model_dir} has no codec tables ({TABLES_FILE})", param="tables")
        codec = cls(decoder, *read_tables(path, decoder), cls.sae_sparse_encoder(sae, device) if encoder else None,
                    read_rdo(path), device, None if encoder else DataStats.from_config(cfg))
        codec.model_dir = Path(model_dir)
        return codec

    def model_section(self) -> bytes:
        """The decoder and tables as the safetensors bytes of a self-contained file."""
        return safetensors.numpy.save({**self.decoder.to_arrays(), **self.tables_arrays()})

    @classmethod
    def from_model_section(cls, data: bytes, header: Header | None = None) -> "Codec":
        """A decode-only codec from a self-contained file's model section: CodecError unless it holds
        exactly the decoder's and the tables' arrays, each of the dtype and shape ``model_section``
        writes, consistent with each other, finite, input_scale > 0 (``Decoder``, ``_tables_from_arrays``).
        ``header``: the file's, checked (``check_header``) as early as each part allows: shapes and the
        tables' fingerprint before the decoder's rows are decoded, the decoder's fingerprint as they
        are (``Decoder.from_arrays``), so that a section the header does not name costs no more than
        its symbols."""
        try:
            a = safetensors.numpy.load(data)
        except Exception as e:  # safetensors raises several types for damaged bytes
            raise CodecError(f"the file's model section is damaged ({str(e).splitlines()[0][:120] if str(e) else type(e).__name__})") from None
        try:
            rows = Decoder.CODED_ARRAYS if "W_dec" not in a and "W_dec_words" in a else Decoder.ARRAYS
            quantiser, model = tables_from_arrays(a, rows)
            if header is not None:
                check_section_header(a, quantiser, model, header)
            decoder = Decoder.from_arrays(a, header.sae_fingerprint if header is not None else None)
            if decoder.d_sae != model.d_sae:
                raise ValueError(f"W_dec has {decoder.d_sae} rows, the tables {model.d_sae} features")
        except ValueError as e:
            raise CodecError(f"the file's model section is damaged ({e})") from None
        return cls(decoder, quantiser, model)

    # -- latents ----------------------------------------------------------------------------------
    @property
    def entropy_fingerprint(self) -> str:
        return entropy_fingerprint(self.quantiser, self.entropy_model)

    def latents(self, x: np.ndarray, chunk_size: int | None = None, first_row: int = 0,
                what: str = "activations", z: SparseLatents | None = None) -> SparseCodes:
        """Activations [n, d_in] -> quantised latents: what a file encoded with ``chunk_size`` stores.

        The encoder runs chunk by chunk as `encode` does (a matmul's float rounding may depend on
        its batch, so a latent on a bin boundary could differ between chunkings). ``z``: the encoder's
        output for x when the caller already has it (``sae_sparse_encoder``, run in chunks of
        chunk_size): then the encoder does not run, only the quantiser (and RDO's optimisation).
        CodecError naming ``what`` and the row (x's first row being ``first_row``) of a latent the
        format cannot code."""
        if self.encoder is None and z is None:
            raise ModelError("this codec has no encoder (it was loaded from a file, or with Codec.load(encoder=False))")
        if chunk_size is not None and chunk_size < len(x):  # each chunk checked and read on its own
            check_shape(x, self.decoder.d_in, what)
            return SparseCodes.concat([
                self.latents(x[s:s + chunk_size], first_row=first_row + s, what=what,
                             z=None if z is None else SparseLatents(z.values[s:s + chunk_size], z.indices[s:s + chunk_size]))
                for s in range(0, len(x), chunk_size)])
        x = check_activations(x, self.decoder.d_in, what)
        try:
            codes = self.quantise(self.encoder(x) if z is None else z)
        except RowError as e:
            raise CodecError(f"{what}: {e.describe(first_row + e.row)}") from None
        return codes if self.rdo_lambda is None else self.optimise(x, codes)

    def optimise(self, x: np.ndarray, codes: SparseCodes) -> SparseCodes:
        """The rate-distortion optimised codes of x [n, d_in] (float32) from their plain ones, at this
        codec's rdo_lambda (``rdo.optimise_codes``); under a "tree" hierarchy pruned to its forest."""
        from mdlcodec.codec.rate.rdo import optimise_codes

        codes = optimise_codes(x, codes, self.decoder, self.quantiser, self.entropy_model, self.rdo_lambda, self.device)
        h = self.entropy_model.hierarchy
        return prune_to_forest(codes, h.parents) if h is not None and h.kind == "tree" else codes

    @property
    def data_stats(self) -> DataStats | None:
        """Statistics of the data its SAE was trained on (``scale.scale_warning``), where the encoder
        carries them (``sae_sparse_encoder`` of an SAE trained by this version) or the codec was given
        them (``load(encoder=False)``); else None."""
        return self._data_stats if self._data_stats is not None else getattr(self.encoder, "data_stats", None)

    def quantise(self, z: np.ndarray | SparseLatents) -> SparseCodes:
        """Latents, dense [n, d_sae] or SparseLatents (the same codes either way), -> quantised latents;
        under a "tree" hierarchy a child whose parent's bin is 0 is dropped with it (``hierarchy.prune_to_forest``)."""
        codes = self.quantiser.quantise_latents(z)
        h = self.entropy_model.hierarchy
        return prune_to_forest(codes, h.parents) if h is not None and h.kind == "tree" else codes

    def reconstruct(self, codes: SparseCodes) -> np.ndarray:
        """Quantised latents -> activations [n, d_in] float32."""
        return self.decoder.reconstruct_sparse(codes.indptr, codes.indices, self.quantiser.values(codes))

    # -- files as bytes ---------------------------------------------------------------------------
    def coder(self, version: int = VERSION) -> ChunkCoder:
        """The chunk coder of format ``version`` (``chunk_coder``, the current version's, by default)."""
        return self.chunk_coder if version == self.chunk_coder.version else ChunkCoder(self.entropy_model, version)

    def header(self, n: int, chunk_size: int, file_id: str | None = None, version: int = VERSION) -> Header:
        """The header of a file of format ``version`` holding n samples in chunks of chunk_size (a new
        random file_id unless given)."""
        n, chunk_size = operator.index(n), operator.index(chunk_size)
        return Header(n=n, d_in=self.decoder.d_in, d_sae=self.decoder.d_sae, chunk_size=chunk_size,
                      n_chunks=-(-n // chunk_size) if chunk_size > 0 else 0, sae_fingerprint=self.decoder.fingerprint(),
                      entropy_model_fingerprint=self.entropy_fingerprint, mdlcodec=__version__,
                      file_id=file_id if file_id is not None else new_file_id(), version=version)

    def write(self, f, chunks: Iterator[np.ndarray], n: int, chunk_size: int = DEFAULT_CHUNK,
              embed_model: bool = False, file_id: str | None = None, what: str = "activations",
              version: int = VERSION) -> None:
        """Encode activation chunks (chunk_size rows each, the last n - ... rows) into an open binary
        file. CodecError, naming the row of the file and ``what``, for a latent the format cannot code
        (``Quantiser``) or whose reconstruction would overflow float32 (``Decoder.check_values``):
        nothing is written that the decoder would refuse, but what was written before stays in f
        (``files.encode_file`` writes to a temporary file)."""
        writer = Writer(f, self.header(n, chunk_size, file_id, version), self.model_section() if embed_model else None)
        row = 0
        for x in chunks:
            writer.write_chunk(len(x), self.chunk_words(x, row, what, version))
            row += len(x)
        writer.finish()

    def chunk_words(self, x: np.ndarray, first_row: int = 0, what: str = "activations",
                    version: int = VERSION) -> np.ndarray:
        """One chunk's activations [rows, d_in] -> its ANS words [n_words] uint32, as a file stores
        them: the one encoding step of ``write``, of ``files.encode_file`` and of its workers
        (``parallel.encode_chunk``). CodecError, naming ``what`` and the row of the file (x's first
        being ``first_row``), for a latent the format cannot code or whose reconstruction would
        overflow float32 (``Decoder.check_values``)."""
        return self.codes_words(self.latents(x, first_row=first_row, what=what), first_row, what, version)

    def codes_words(self, codes: SparseCodes, first_row: int = 0, what: str = "activations",
                    version: int = VERSION) -> np.ndarray:
        """One chunk's quantised latents -> its ANS words [n_words] uint32 in the chunk stream of format
        ``version`` (``chunk_words`` past the encoder), with the same refusals, naming the row of the
        file (the chunk's first being ``first_row``)."""
        bad = self.decoder.check_values(codes, self.quantiser.step)
        if bad is not None:
            raise CodecError(f"{what}: row {first_row + bad} is too large to code: its reconstruction from "
                             "the quantised latents would overflow float32")
        if codes.nnz > MAX_CHUNK_LATENTS:
            per_row = codes.nnz / max(codes.n, 1)
            raise CodecError(f"{what}: rows {first_row} to {first_row + codes.n - 1} hold {codes.nnz:,} active latents, "
                             f"beyond the format's {MAX_CHUNK_LATENTS:,} per chunk (decoding holds one chunk): a chunk "
                             f"size of at most {max(1, int(MAX_CHUNK_LATENTS // max(per_row, 1) // 2))} rows fits",
                             param="chunk_size")
        try:
            return self.coder(version).encode(codes)
        except ChunkTooLarge as e:
            raise CodecError(f"{what}: rows {first_row} to {first_row + codes.n - 1}: {e} (a smaller chunk size fits)",
                             param="chunk_size") from None

    def encode(self, x: np.ndarray, chunk_size: int = DEFAULT_CHUNK, embed_model: bool = False,
               file_id: str | None = None, version: int = VERSION) -> bytes:
        """Activations [n, d_in] -> the bytes of an .mdlc file (format ``version``, by default the
        current one; ``file_id``: 32 hex digits, by default new random ones, so that two encodings of
        the same data differ only there)."""
        x = check_activations(x, self.decoder.d_in, "activations")
        buf = io.BytesIO()
        self.write(buf, (x[s:s + chunk_size] for s in range(0, len(x), max(chunk_size, 1))), len(x), chunk_size,
                   embed_model, file_id, version=version)
        return buf.getvalue()

    def check_header(self, header: Header) -> None:
        """Refuse a file coded for another decoder or other tables."""
        if header.d_in != self.decoder.d_in or header.d_sae != self.decoder.d_sae:
            raise CodecError(f"the file was coded for an SAE of shape d_in={header.d_in}, d_sae={header.d_sae}; "
                             f"this model has d_in={self.decoder.d_in}, d_sae={self.decoder.d_sae}")
        if header.sae_fingerprint != self.decoder.fingerprint():
            raise CodecError("the model does not match the file (SAE decoder fingerprint differs)")
        if header.entropy_model_fingerprint != self.entropy_fingerprint:
            raise CodecError("the model does not match the file (codec tables fingerprint differs)")

    def for_header(self, header: Header) -> "Codec":
        """The codec that decodes a file with this header, checked: this one; for a file coded flat
        (``encode --hierarchy flat``) with tables that also hold a hierarchy, its flat version; or,
        for a file coded with tables fitted earlier, this SAE with that archived set (``archived``)."""
        wanted = header.entropy_model_fingerprint
        if wanted != self.entropy_fingerprint and header.sae_fingerprint == self.decoder.fingerprint():
            if self.entropy_model.hierarchy is not None:
                flat = self.with_hierarchy(None)
                if wanted == flat.entropy_fingerprint:
                    return flat
            earlier = self.archived(wanted)
            if earlier is not None:
                return earlier
        self.check_header(header)
        return self

    def read_codes(self, reader: Reader, stats: dict | None = None) -> Iterator[SparseCodes]:
        """Decode the chunks of an opened file, one SparseCodes per chunk; CodecError for a chunk whose
        stream does not decode under this model, is not the stream the encoder writes for what it
        decodes to (``ChunkCoder.decode`` checks: an ANS decoder accepts some damaged streams, the last
        symbols of a damaged first word among them), or whose latents the encoder would have refused."""
        self.check_header(reader.header)
        for i, (n_rows, words) in enumerate(reader.chunks()):
            yield self.chunk_codes(words, n_rows, f"chunk {i + 1} of {reader.header.n_chunks}", stats,
                                   reader.version)

    def chunk_codes(self, words: np.ndarray, n_rows: int, what: str = "chunk", stats: dict | None = None,
                    version: int = VERSION) -> SparseCodes:
        """One chunk's ANS words (in the chunk stream of format ``version``) -> its quantised latents
        (n_rows rows), checked as ``read_codes`` says: the one decoding step of ``read_codes`` and of
        ``parallel.decode_chunk``. CodecError naming ``what``; ``stats`` gains the chunk's activity and
        value bits."""
        try:
            codes = self.coder(version).decode(words, n_rows, stats)
        except StreamError as e:
            raise CodecError(f"{what}: {e}") from None
        if self.decoder.check_values(codes, self.quantiser.step) is not None:
            raise CodecError(f"{what}: decodes to values whose reconstruction overflows float32")
        return codes

    def decode_latents(self, data: bytes) -> SparseCodes:
        """Bytes of an .mdlc file -> its quantised latents, exactly as encoded (refused as ``decode`` says)."""
        return self._decode(data, False)

    def decode(self, data: bytes) -> np.ndarray:
        """Bytes of an .mdlc file -> reconstructed activations [n, d_in] float32; CodecError, before
        decoding, if they would not fit the memory free (``arrays.check_memory``) or be more than
        ``expansion.MAX_EXPANSION`` times the file's size and over 1 GiB (``decode_file`` can allow that)."""
        return self._decode(data, True)

    def _decode(self, data: bytes, reconstruct: bool) -> SparseCodes | np.ndarray:
        reader = Reader.open(io.BytesIO(data))
        h = reader.header
        out = activation_bytes(h.n, h.d_in) if reconstruct else latent_bytes(h.n)
        check_expansion(out, len(data), f"the {'activations' if reconstruct else 'latents'} of {h.n:,} rows")
        check_memory(8 * (h.n + 1) + (4 * h.n * h.d_in if reconstruct else 0), "the decoded rows")
        parts = list(self.for_header(h).read_codes(reader))
        codes = SparseCodes.concat(parts) if parts else SparseCodes.empty(self.decoder.d_sae)
        return self.reconstruct(codes) if reconstruct else codes
