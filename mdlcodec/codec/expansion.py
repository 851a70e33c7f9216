"""How much larger than its file a decoded output may be: decompression bombs by row count.

A valid file can claim rows that cost almost nothing (a self-contained model makes empty rows, or
rows of one free latent, nearly free): 66 KB can hold 2**20 rows of width 8,192 (32 GiB of float32),
10 KB 4.2 x 10**8 empty rows (3.4 GB of row pointers). Such an output is refused before anything is
decoded unless the caller allows it (``allow``; the CLI's ``--allow-expansion``): an output over
MIN_REFUSED_BYTES that is more than MAX_EXPANSION times the file's size.

The ratio is chosen from what real files reach (``python bench/expansion.py`` lists the 59 files of
docs/results and bench/results): float32 activations are 32 * d_in bits per sample against the
file's bits per sample, at most 185x for SmolLM2-135M (d_in 576, 99.4 bits per token at FVU 0.2
with Chow-Liu tables) and 414x for MNIST (784 pixels, 60.6 bits at MSE 0.015, RDO and Chow-Liu);
an LM SAE of 100 bits per token at d_in 2,304 would be about 740x. MAX_EXPANSION = 2**14 is 40
times the largest measured, 22 times the last. Latents are measured by their row pointers alone (8
bytes a row: the output's least; a real .npz is 14x to 21x its file).
"""

from __future__ import annotations

from mdlcodec.core.errors import CodecError

MAX_EXPANSION = 1 << 14
MIN_REFUSED_BYTES = 1 << 30


def activation_bytes(rows: int, d_in: int) -> int:
    """Bytes of ``rows`` decoded activations of width d_in (float32)."""
    return 4 * rows * d_in


def latent_bytes(rows: int) -> int:
    """The least bytes of ``rows`` decoded rows of latents: their row pointers (int64), whatever they hold."""
    return 8 * (rows + 1)


def check_expansion(output_bytes: int, file_bytes: int, what: str, allow: bool = False) -> None:
    """CodecError (param "expansion"), unless ``allow``, if ``what`` (``output_bytes`` decoded from a file
    of ``file_bytes``) is over MIN_REFUSED_BYTES and more than MAX_EXPANSION times the file's size."""
    if allow or output_bytes <= MIN_REFUSED_BYTES or output_bytes <= MAX_EXPANSION * file_bytes:
        return
    raise CodecError(f"{what} would take {output_bytes:,} bytes, {output_bytes / max(file_bytes, 1):,.0f} times "
                     f"the file's {file_bytes:,}: real files reach a few hundred times, this decoder refuses more "
                     f"than {MAX_EXPANSION:,} (a decompression bomb?)", param="expansion")
