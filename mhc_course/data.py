"""Offline text data for the training run: byte-level tokens, a train/val split, random batches.

The default corpus is committed under ``data/`` (three public-domain texts, see
``data/README.md``), so training never downloads anything. Any UTF-8 text file of your own
works too. Tokens are bytes (a vocabulary of 256), so every file has a tokenisation and
decoding never fails; ``\\r\\n`` is read as ``\\n``.

Each document is split on its own: its first ``1 - val_fraction`` of bytes go to training,
the rest to validation. Batches are windows of ``seq_len + 1`` bytes at random offsets drawn
from a ``torch.Generator`` the caller seeds, so a run's data order is a function of its seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

VOCAB_SIZE = 256
SPLITS = ("train", "val")
DATA_DIR = Path(__file__).resolve().parent.parent / "data"
DEFAULT_CORPUS = ("alice29.txt", "asyoulik.txt", "plrabn12.txt")
SEPARATOR = b"\n\n"


def default_corpus_paths() -> list[Path]:
    """The committed corpus files, in a fixed order."""
    return [DATA_DIR / name for name in DEFAULT_CORPUS]


def encode(text: str) -> Tensor:
    """UTF-8 bytes of ``text`` as a (len,) int64 tensor of token ids in [0, 256)."""
    return torch.tensor(list(text.encode("utf-8")), dtype=torch.long)


def decode(ids: Tensor | Sequence[int]) -> str:
    """Token ids (any shape flattened) back to text; invalid UTF-8 shows as U+FFFD."""
    values = ids.flatten().tolist() if isinstance(ids, Tensor) else list(ids)
    if any(not 0 <= v < VOCAB_SIZE for v in values):
        raise ValueError(f"ids must lie in [0, {VOCAB_SIZE}), got min {min(values)}, max {max(values)}")
    return bytes(values).decode("utf-8", errors="replace")


def read_document(path: str | Path) -> bytes:
    """The bytes of one UTF-8 text file, ``\\r\\n`` turned into ``\\n``.

    Raises ValueError when the file is missing, unreadable, empty or not UTF-8 text.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"data file {str(path)!r} cannot be read: {exc.strerror or exc}") from exc
    if not raw.strip():
        raise ValueError(f"data file {str(path)!r} is empty")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"data file {str(path)!r} is not UTF-8 text (byte {exc.start} is 0x{raw[exc.start]:02x}); "
            "give a plain-text file"
        ) from exc
    if b"\x00" in raw:
        raise ValueError(f"data file {str(path)!r} contains NUL bytes: it looks binary, give a plain-text file")
    return raw.replace(b"\r\n", b"\n")


@dataclass(frozen=True)
class TextData:
    """Token streams for training and validation.

    Attributes:
        train, val: (N,) uint8 token ids, documents joined by a blank line.
        sources: the files they were read from.
    """

    train: Tensor
    val: Tensor
    sources: tuple[str, ...]

    def split(self, name: str) -> Tensor:
        if name not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {name!r}")
        return self.train if name == "train" else self.val

    def check_fits(self, seq_len: int) -> None:
        """Both splits must hold at least one window of ``seq_len + 1`` tokens."""
        if seq_len < 1:
            raise ValueError(f"seq_len must be >= 1, got {seq_len}")
        for name in SPLITS:
            n = len(self.split(name))
            if n < seq_len + 1:
                raise ValueError(
                    f"the {name} split of {', '.join(self.sources)} has {n} tokens, fewer than "
                    f"seq_len + 1 = {seq_len + 1}: give more text or a shorter seq_len"
                )

    def batch(self, split: str, batch_size: int, seq_len: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Random windows: inputs x (batch_size, seq_len) and targets y (the same shifted by one), int64.

        Offsets come from ``generator`` alone, so the same generator state gives the same batch.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.check_fits(seq_len)
        tokens = self.split(split)
        starts = torch.randint(0, len(tokens) - seq_len, (batch_size,), generator=generator)
        windows = tokens[starts.unsqueeze(1) + torch.arange(seq_len + 1)].long()
        return windows[:, :-1], windows[:, 1:]


def load_text_data(paths: Sequence[str | Path] | str | Path | None = None, val_fraction: float = 0.1) -> TextData:
    """Read ``paths`` (default: the committed corpus) and split each document train/val.

    Args:
        paths: one file or several; None reads ``default_corpus_paths()``.
        val_fraction: share of each document's bytes, taken from its end, used for validation.
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction}")
    if paths is None:
        paths = default_corpus_paths()
    elif isinstance(paths, (str, Path)):
        paths = [paths]
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("paths must name at least one file, got none")
    train_parts, val_parts = [], []
    for path in paths:
        doc = read_document(path)
        cut = int(round(len(doc) * (1 - val_fraction)))
        train_parts.append(doc[:cut])
        val_parts.append(doc[cut:])

    def join(parts: list[bytes]) -> Tensor:
        return torch.frombuffer(bytearray(SEPARATOR.join(parts)), dtype=torch.uint8)

    return TextData(join(train_parts), join(val_parts), tuple(str(p) for p in paths))
