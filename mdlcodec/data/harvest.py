"""Activations from a transformer: run a Hugging Face ``transformers`` model from a local folder over
text and write one layer's residual stream, per token, as a shard folder (mdlcodec.data.shards).

What is taken, as the field takes it: ``hidden_states[layer]`` of ``AutoModel`` (``layer`` 0 is the
embeddings, ``layer`` i the output of block i; in many models the last one has the final norm
applied), at every real token of the text: the BOS/CLS position, EOS/SEP where the tokenizer adds
them, and padding are dropped (the tokenizer's special-tokens mask and the attention mask). A
tokenizer that adds no token at the start of a sequence but has a BOS token (GPT-2, Pythia) gets one
prepended, as SAELens does, and dropped from the rows the same way.

Text: ``.txt`` files (UTF-8; cut into blocks of whole paragraphs), folders of them (every ``*.txt``
below, in name order), or a ``datasets`` dataset saved with ``save_to_disk`` that has a "text"
column (one document a row). Each document is tokenized once and cut into windows of
``max_length`` tokens (specials included), each window one sequence: no text is truncated away.

Massive activations (opt-in, ``max_norm_ratio``): many small LMs put huge norms on a few tokens
(SmolLM2-135M: about 45% of the sum of squares on 81 of 300,000 tokens). With a ratio R, a token
whose activation norm exceeds R times the median norm of the first forward pass's tokens is left out;
the manifest's ``norm_cut`` records R, that median, how many tokens it was taken over, the
threshold and the tokens left out. ``tokens`` counts the tokens kept.

``transformers`` (and ``datasets`` for saved datasets) are the optional extra ``mdlcodec[lm]``;
they are imported here only, when a harvest runs.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from mdlcodec import __version__
from mdlcodec.core.atomic import atomic_folder
from mdlcodec.core.errors import DataError, MdlcodecError, ModelError, first_line
from mdlcodec.core.progress import ProgressBar
from mdlcodec.data.shards import DTYPES, ShardWriter

EXTRA = "pip install 'mdlcodec[lm]'"
DEFAULT_MAX_LENGTH = 128
DEFAULT_BATCH_SIZE = 8
DEFAULT_SHARD_TOKENS = 65536
BLOCK_CHARS = 16_000  # a .txt file is read as documents of whole paragraphs up to about this many characters


def _require(module: str):
    """Import an optional module of the [lm] extra, or one line saying how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MdlcodecError(f"harvesting activations needs {module}, in the optional extra: {EXTRA}") from None


# ---------------------------------------------------------------- text


@dataclass
class TextSource:
    """One text source: a .txt file, or a dataset saved on disk ("text" column)."""

    path: Path
    kind: str  # "txt" or "dataset"
    documents: int = 0
    tokens: int = 0
    meta: dict = field(default_factory=dict)

    def record(self) -> dict:
        return {"path": str(self.path), "kind": self.kind, "documents": self.documents, "tokens": self.tokens, **self.meta}


def _is_saved_dataset(folder: Path) -> bool:
    return (folder / "dataset_info.json").is_file() or (folder / "state.json").is_file() or \
        (folder / "dataset_dict.json").is_file()


def text_sources(paths: list[str | Path]) -> list[TextSource]:
    """The sources that ``paths`` name, checked (each exists; a folder holds .txt files or is a saved
    dataset); DataError naming the path otherwise, or if there is none."""
    if not paths:
        raise DataError("no text to run the model on: give a .txt file, a folder of them, or a saved dataset",
                        param="text")
    out: list[TextSource] = []
    for p in map(Path, paths):
        if p.is_file():
            out.append(TextSource(p, "txt"))
        elif p.is_dir() and _is_saved_dataset(p):
            out.append(TextSource(p, "dataset"))
        elif p.is_dir():
            files = sorted(f for f in p.rglob("*.txt") if f.is_file())
            if not files:
                raise DataError(f"{p} holds no .txt file and is not a dataset saved with datasets' save_to_disk",
                                param="text")
            out.extend(TextSource(f, "txt") for f in files)
        else:
            raise DataError(f"{p}: no such file or folder", param="text")
    return out


def _txt_documents(path: Path) -> Iterator[str]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise DataError(f"cannot read {path}: {first_line(e)}") from None
    block: list[str] = []
    size = 0
    for para in text.split("\n\n"):
        para = para.strip()
        if not para:
            continue
        if block and size + len(para) > BLOCK_CHARS:
            yield "\n\n".join(block)
            block, size = [], 0
        block.append(para)
        size += len(para) + 2
    if block:
        yield "\n\n".join(block)


def _load_saved_dataset(src: TextSource):
    datasets = _require("datasets")
    try:
        ds = datasets.load_from_disk(str(src.path))
    except Exception as e:  # not a dataset after all, or one of another version
        raise DataError(f"cannot load the dataset {src.path}: {first_line(e)}") from None
    if isinstance(ds, datasets.DatasetDict):
        if "train" not in ds and len(ds) != 1:
            raise DataError(f"{src.path} holds splits {', '.join(ds)}; save one split, or one named train")
        split = "train" if "train" in ds else next(iter(ds))
        src.meta["split"] = split
        ds = ds[split]
    if "text" not in ds.column_names:
        raise DataError(f"the dataset {src.path} has no 'text' column (it has: {', '.join(ds.column_names)})")
    return ds


def _documents(src: TextSource) -> Iterator[str]:
    if src.kind == "txt":
        yield from _txt_documents(src.path)
        return
    for row in _load_saved_dataset(src).select_columns(["text"]):
        if isinstance(row["text"], str) and row["text"].strip():
            yield row["text"]


# ---------------------------------------------------------------- model


def _load(model_path: Path, device: str):
    """(model, tokenizer, the transformers module) from a local folder, float32, eval mode, on device;
    ModelError otherwise."""
    transformers = _require("transformers")
    import torch

    if not model_path.is_dir():
        raise ModelError(f"{model_path}: no such model folder")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(f"device {device!r} requested but CUDA is not available here", param="device")
    if not (device == "cpu" or device.startswith("cuda")):
        raise ModelError(f"unknown device {device!r}; use cpu or cuda", param="device")
    with _quiet_transformers(transformers):
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(str(model_path), local_files_only=True)
        except Exception as e:  # no tokenizer files, or ones this transformers cannot read
            raise ModelError(f"cannot load a tokenizer from {model_path}: {first_line(e)}") from None
        if not getattr(tokenizer, "is_fast", False):
            raise ModelError(f"the tokenizer in {model_path} is not a fast tokenizer; harvest needs one "
                             "(its special-tokens mask and overflowing windows)")
        try:
            model = transformers.AutoModel.from_pretrained(str(model_path), local_files_only=True, dtype=torch.float32)
        except Exception as e:  # no config or weights, an unknown architecture, damaged files
            raise ModelError(f"cannot load a transformers model from {model_path}: {first_line(e)}") from None
    tokenizer.truncation_side = "right"  # windows in text order
    model.eval().to(device)
    if hasattr(model.config, "use_cache"):
        model.config.use_cache = False
    return model, tokenizer, transformers


@contextlib.contextmanager
def _quiet_transformers(transformers):
    """transformers' own progress bars and advice off while loading and running (the CLI reports)."""
    logging = transformers.utils.logging
    verbosity = logging.get_verbosity()
    bars = logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(verbosity)
        if bars:
            logging.enable_progress_bar()


def _num_layers(model) -> int | None:
    cfg = model.config
    cfg = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
    n = getattr(cfg, "num_hidden_layers", None)
    return int(n) if isinstance(n, int) else None


def _max_positions(model) -> int | None:
    cfg = model.config
    cfg = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
    for name in ("max_position_embeddings", "n_positions"):
        n = getattr(cfg, name, None)
        if isinstance(n, int) and n > 0:
            return n
    return None


def _layer_list(model, n_layers: int | None):
    """The model's ModuleList of its n_layers blocks (the first such list), or None."""
    import torch

    if not n_layers:
        return None
    for _, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == n_layers and \
                len({type(m) for m in module}) == 1:
            return module
    return None


class _Stop(Exception):
    """Raised by the capture hook to stop a forward pass at the harvested layer."""


class _Runner:
    """Runs the model on a batch and returns hidden_states[layer] [B, T, d]. Below the last layer it
    stops the forward pass at the layer (a pre-hook on block ``layer`` captures its input) once a
    first batch has shown the capture equal to hidden_states[layer]; otherwise it runs the whole model."""

    def __init__(self, model, layer: int, n_layers: int | None) -> None:
        self.model, self.layer = model, layer
        self.blocks = _layer_list(model, n_layers) if n_layers is not None and layer < n_layers else None
        self.early_stop: bool | None = None if self.blocks is not None else False  # None: not yet known
        self.captured = None
        self.stop = False

    def _hook(self, module, args, kwargs):
        h = args[0] if args else kwargs.get("hidden_states")
        self.captured = h
        if self.stop:
            raise _Stop

    def __call__(self, input_ids, attention_mask):
        import torch

        if not self.early_stop:
            handle = self.blocks[self.layer].register_forward_pre_hook(self._hook, with_kwargs=True) \
                if self.early_stop is None else None
            try:
                out = self.model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
            finally:
                if handle is not None:
                    handle.remove()
            hs = getattr(out, "hidden_states", None)
            if hs is None:
                raise ModelError(f"{type(self.model).__name__} returns no hidden states")
            if not 0 <= self.layer < len(hs):
                raise ModelError(f"layer {self.layer} is out of range: the model has {len(hs) - 1} layers, "
                                 f"so the layer is 0 (the embeddings) to {len(hs) - 1}", param="layer")
            h = hs[self.layer]
            if self.early_stop is None:
                c = self.captured
                self.early_stop = isinstance(c, torch.Tensor) and c.shape == h.shape and torch.equal(c, h)
                self.captured = None
            return h
        self.stop, self.captured = True, None
        handle = self.blocks[self.layer].register_forward_pre_hook(self._hook, with_kwargs=True)
        try:
            self.model(input_ids=input_ids, attention_mask=attention_mask)
        except _Stop:
            pass
        finally:
            handle.remove()
            self.stop = False
        h, self.captured = self.captured, None
        return h


def _bos_policy(tokenizer) -> tuple[bool, str]:
    """(prepend a BOS ourselves?, what the manifest says about the first position)."""
    probe = tokenizer("a b", add_special_tokens=True, return_special_tokens_mask=True)
    ids, special = probe["input_ids"], probe["special_tokens_mask"]
    if ids and special[0]:
        return False, f"the tokenizer adds {tokenizer.convert_ids_to_tokens(ids[0])!r} (dropped)"
    if tokenizer.bos_token_id is not None:
        return True, f"{tokenizer.bos_token!r} prepended (dropped)"
    return False, "none: the tokenizer has no BOS token and adds none"


def _windows(tokenizer, text: str, max_length: int, bos: int | None) -> Iterator[tuple[list[int], list[int]]]:
    """(input ids, special-tokens mask) of each window of text, specials included (a prepended BOS too)."""
    room = max_length - (bos is not None)
    enc = tokenizer(text, add_special_tokens=True, truncation=True, max_length=room, return_overflowing_tokens=True,
                    return_special_tokens_mask=True, return_attention_mask=False)
    for ids, special in zip(enc["input_ids"], enc["special_tokens_mask"]):
        if bos is not None:
            ids, special = [bos, *ids], [1, *special]
        if len(special) > sum(special):
            yield ids, special


class NormFilter:
    """Leaves out tokens whose activation norm exceeds ``ratio`` times the median norm of the first
    rows it is given (the module's docstring); counts what it leaves out."""

    def __init__(self, ratio: float) -> None:
        if not (np.isfinite(ratio) and ratio > 0):
            raise DataError(f"max_norm_ratio is {ratio}; expected a finite number > 0", param="max_norm_ratio")
        self.ratio, self.median, self.median_of, self.dropped = float(ratio), None, 0, 0

    def keep(self, rows: np.ndarray) -> np.ndarray:
        """[n] bool: the rows [n, d] at or under the threshold (set from the first rows given)."""
        norms = np.sqrt((rows.astype(np.float64) ** 2).sum(1))
        if self.median is None and len(rows):
            self.median, self.median_of = float(np.median(norms)), len(rows)
        keep = norms <= self.threshold if self.median is not None else np.ones(len(rows), bool)
        self.dropped += int((~keep).sum())
        return keep

    @property
    def threshold(self) -> float:
        return self.ratio * self.median

    def record(self) -> dict:
        return {"max_norm_ratio": self.ratio, "median_norm": self.median, "median_of_tokens": self.median_of,
                "threshold": self.threshold if self.median is not None else None, "dropped_tokens": self.dropped}


def harvest(model_path: str | Path, layer: int, out_dir: str | Path, texts: list[str | Path],
            tokens: int | None = None, shard_tokens: int = DEFAULT_SHARD_TOKENS,
            max_length: int = DEFAULT_MAX_LENGTH, batch_size: int = DEFAULT_BATCH_SIZE, dtype: str = "float32",
            device: str = "cpu", overwrite: bool = False, progress: bool = True,
            max_norm_ratio: float | None = None) -> dict:
    """Run the model in the folder ``model_path`` over ``texts`` and write ``hidden_states[layer]`` at
    every real token (at most ``tokens`` of them, all the text if None) into the shard folder
    ``out_dir`` (shards of ``shard_tokens`` rows of ``dtype``, and manifest.json), built beside it and
    renamed into place: a failure writes nothing. Refuses an existing out_dir unless ``overwrite``.
    ``max_norm_ratio``: leave out the tokens of massive norm (``NormFilter``, the module's docstring).

    Returns the manifest's figures: output, model, layer, d, dtype, tokens, shards, seconds,
    tokens_per_s, early_stop (whether the forward passes stopped at the layer), and with
    max_norm_ratio norm_cut. Raises MdlcodecError (DataError, ModelError) with one line for bad input."""
    cut = NormFilter(max_norm_ratio) if max_norm_ratio is not None else None
    if dtype not in DTYPES:
        raise DataError(f"dtype {dtype!r}; expected one of {', '.join(DTYPES)}", param="dtype")
    for name, v in (("tokens", tokens), ("shard_tokens", shard_tokens), ("max_length", max_length),
                    ("batch_size", batch_size)):
        if v is not None and v < 1:
            raise DataError(f"{name} is {v}; expected at least 1", param=name)
    if layer < 0:
        raise ModelError(f"layer {layer} is out of range: the layer is 0 (the embeddings) or more", param="layer")
    model_path, out_dir = Path(model_path), Path(out_dir)
    sources = text_sources(texts)
    if out_dir.exists() and not overwrite:  # before loading the model
        raise MdlcodecError(f"{out_dir} exists", param="overwrite")
    model, tokenizer, transformers = _load(model_path, device)
    import torch

    n_layers = _num_layers(model)
    if n_layers is not None and layer > n_layers:
        raise ModelError(f"layer {layer} is out of range: {model_path} has {n_layers} layers, so the layer is "
                         f"0 (the embeddings) to {n_layers}", param="layer")
    positions = _max_positions(model)
    if positions is not None and max_length > positions:
        raise ModelError(f"max_length {max_length} exceeds the {positions} positions of {model_path}",
                         param="max_length")
    prepend, first_position = _bos_policy(tokenizer)
    if prepend and max_length < 2:
        raise DataError("max_length must be at least 2 to hold the BOS token and one token", param="max_length")
    bos = tokenizer.bos_token_id if prepend else None
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    runner = _Runner(model, layer, n_layers)
    d = int(model.config.get_text_config().hidden_size if hasattr(model.config, "get_text_config")
            else model.config.hidden_size)

    t0 = time.perf_counter()
    inputs = [s.path for s in sources] + [model_path]
    with atomic_folder(out_dir, overwrite, inputs) as tmp, _quiet_transformers(transformers), torch.inference_mode():
        writer = ShardWriter(tmp, d, dtype, shard_tokens)
        bar = ProgressBar(tokens or 0, f"harvest layer {layer}", enabled=progress, unit="tokens")
        try:
            batch: list[tuple[list[int], list[int], TextSource]] = []

            def run_batch() -> None:
                width = max(len(ids) for ids, _, _ in batch)
                ids_t = torch.full((len(batch), width), pad, dtype=torch.long)
                mask_t = torch.zeros((len(batch), width), dtype=torch.long)
                keep = torch.zeros((len(batch), width), dtype=torch.bool)
                for i, (ids, special, _) in enumerate(batch):
                    ids_t[i, :len(ids)] = torch.tensor(ids)
                    mask_t[i, :len(ids)] = 1
                    keep[i, :len(ids)] = torch.tensor(special) == 0
                try:
                    h = runner(ids_t.to(device), mask_t.to(device))
                except MdlcodecError:
                    raise
                except Exception as e:  # a model this way of running does not fit (encoder-decoder, ...)
                    raise ModelError(f"running {type(model).__name__} from {model_path} failed: {first_line(e)}") from None
                if h.ndim != 3 or h.shape[-1] != d:
                    raise ModelError(f"hidden_states[{layer}] of {model_path} has shape {tuple(h.shape)}, "
                                     f"not [batch, tokens, {d}]")
                rows = h[keep.to(h.device)].float().cpu().numpy()  # real tokens, sequence by sequence
                if not np.isfinite(rows).all():
                    raise DataError(f"the model's layer {layer} gave NaN or Inf activations")
                owner = np.repeat(np.arange(len(batch)), [len(sp) - sum(sp) for _, sp, _ in batch])
                if cut is not None:
                    kept = cut.keep(rows)
                    rows, owner = rows[kept], owner[kept]
                if tokens is not None:
                    rows, owner = rows[:tokens - writer.total - writer.fill], owner[:tokens - writer.total - writer.fill]
                writer.add(rows)
                for i, n in enumerate(np.bincount(owner, minlength=len(batch))):  # credit each source with its tokens taken
                    batch[i][2].tokens += int(n)
                bar.update(len(rows))
                bar.set_figures(shards=str(-(-(writer.total + writer.fill) // shard_tokens)))
                batch.clear()

            def done() -> bool:
                return tokens is not None and writer.total + writer.fill >= tokens

            for src in sources:
                if done():
                    break
                for text in _documents(src):
                    src.documents += 1
                    for ids, special in _windows(tokenizer, text, max_length, bos):
                        batch.append((ids, special, src))
                        if len(batch) == batch_size:
                            run_batch()
                            if done():
                                break
                    if done():
                        break
            if batch and not done():
                run_batch()
            if writer.total + writer.fill == 0 and cut is not None and cut.dropped:
                raise DataError(f"the norm cut left no tokens: all {cut.dropped:,} exceed {cut.ratio:g} x the median "
                                f"norm {cut.median:.4g}", param="max_norm_ratio")
            if writer.total + writer.fill == 0:
                raise DataError("the text holds no tokens: " + ", ".join(str(s.path) for s in sources[:3])
                                + (" ..." if len(sources) > 3 else ""))
        except BaseException:
            bar.close(ok=False)
            raise
        bar.close()
        seconds = time.perf_counter() - t0
        manifest = writer.finish(
            model={"path": str(model_path.resolve()), "name": model_path.resolve().name,
                   "class": type(model).__name__, "model_type": getattr(model.config, "model_type", None),
                   "num_layers": n_layers},
            layer=layer, hook_point=f"hidden_states[{layer}]"
            + (" (embeddings)" if layer == 0 else f" (residual stream after block {layer - 1})"),
            first_position=first_position, dropped="BOS/CLS, EOS/SEP and other special tokens, padding",
            max_length=max_length, batch_size=batch_size,
            sources=[s.record() for s in sources if s.documents], mdlcodec_version=__version__,
            transformers_version=transformers.__version__, **({"norm_cut": cut.record()} if cut is not None else {}))
    return {"output": str(out_dir), "model": manifest["model"]["name"], "layer": layer, "d": d, "dtype": dtype,
            "tokens": manifest["total_tokens"], "shards": len(manifest["shards"]), "seconds": seconds,
            "tokens_per_s": manifest["total_tokens"] / seconds if seconds > 0 else None,
            "early_stop": bool(runner.early_stop), "text_ran_out": tokens is not None and manifest["total_tokens"] < tokens,
            **({"norm_cut": manifest["norm_cut"]} if cut is not None else {})}


def saelens_provenance(manifest: dict) -> dict:
    """What a harvested shard folder's manifest says of where its activations come from, in the
    names SAELens' metadata uses: model_name (the model folder's name) and hook_name, the
    TransformerLens name of the harvested residual stream (hidden_states[L] enters block L:
    blocks.L.hook_resid_pre; after the last block, blocks.(L-1).hook_resid_post). Missing fields
    give None."""
    model = manifest.get("model") if isinstance(manifest.get("model"), dict) else {}
    layer, n_layers = manifest.get("layer"), model.get("num_layers")
    hook = None
    if isinstance(layer, int) and not isinstance(layer, bool) and layer >= 0:
        hook = (f"blocks.{layer - 1}.hook_resid_post" if isinstance(n_layers, int) and layer == n_layers and layer > 0
                else f"blocks.{layer}.hook_resid_pre")
    name = model.get("name")
    return {"model_name": name if isinstance(name, str) else None, "hook_name": hook}
