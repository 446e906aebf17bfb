"""Offline data: the committed corpus is what data/README.md says, byte tokens, splits, batches, errors."""

import hashlib
import re

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from mhc_course.data import DATA_DIR, DEFAULT_CORPUS, decode, default_corpus_paths, encode, load_text_data


def test_committed_corpus_matches_its_readme():
    readme = (DATA_DIR / "README.md").read_text()
    for path in default_corpus_paths():
        row = next(line for line in readme.splitlines() if line.startswith(f"| `{path.name}`"))
        size, digest = re.search(r"\| ([\d,]+) \| `([0-9a-f]{64})` \|$", row).groups()
        raw = path.read_bytes()
        assert len(raw) == int(size.replace(",", ""))
        assert hashlib.sha256(raw).hexdigest() == digest


def test_default_corpus_splits_every_document():
    data = load_text_data(val_fraction=0.1)
    docs = [p.read_bytes().replace(b"\r\n", b"\n") for p in default_corpus_paths()]
    total = sum(len(d) for d in docs)
    sep = 2 * (len(docs) - 1)  # documents are joined by a blank line
    assert len(data.train) + len(data.val) == total + 2 * sep
    assert abs(len(data.val) - sep - 0.1 * total) < len(docs)
    assert b"\r" not in data.train.numpy().tobytes() and data.train.dtype == torch.uint8
    # each document contributes its own tail to validation: the last lines of all three texts
    val = decode(data.val)
    assert "THE END" in val and "solitary way" in val
    assert data.sources == tuple(str(DATA_DIR / n) for n in DEFAULT_CORPUS)


@given(st.text(max_size=200))
def test_encode_decode_round_trip(text):
    ids = encode(text)
    assert ids.dtype == torch.long and ids.shape == (len(text.encode("utf-8")),)
    assert decode(ids) == text


def test_decode_rejects_ids_outside_a_byte():
    with pytest.raises(ValueError, match=r"\[0, 256\)"):
        decode([65, 300])


def test_batches_are_shifted_windows_from_the_seeded_generator():
    data = load_text_data()
    g = lambda s: torch.Generator().manual_seed(s)  # noqa: E731
    x, y = data.batch("train", 5, 24, g(7))
    assert x.shape == y.shape == (5, 24) and x.dtype == torch.long
    assert torch.equal(x[:, 1:], y[:, :-1])
    x2, y2 = data.batch("train", 5, 24, g(7))
    assert torch.equal(x, x2) and torch.equal(y, y2)
    x3, _ = data.batch("train", 5, 24, g(8))
    assert not torch.equal(x, x3)
    xv, _ = data.batch("val", 5, 24, g(7))
    assert not torch.equal(x, xv)
    # every row is a real window of the split
    train = data.train.numpy().tobytes()
    assert all(bytes(row.tolist()) in train for row in x)
    with pytest.raises(ValueError, match="split must be one of"):
        data.batch("test", 2, 8, g(0))
    with pytest.raises(ValueError, match="batch_size"):
        data.batch("train", 0, 8, g(0))


def test_reads_a_users_file(tmp_path):
    text = "Ünïcode line one.\r\nline two, a bit longer than the first.\r\n" * 20
    path = tmp_path / "mine.txt"
    path.write_bytes(text.encode("utf-8"))
    data = load_text_data(path, val_fraction=0.25)
    joined = decode(torch.cat([data.train, data.val]))
    assert joined == text.replace("\r\n", "\n")
    assert data.sources == (str(path),)
    data.check_fits(16)


@pytest.mark.parametrize(
    "content, words",
    [
        (b"", "is empty"),
        (b"   \n\n", "is empty"),
        (b"\xff\xfe\x00binary", "not UTF-8"),
        (b"text\x00with a NUL", "NUL bytes"),
    ],
)
def test_unreadable_files_get_a_clear_error(tmp_path, content, words):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=words) as err:
        load_text_data(path)
    assert "bad.txt" in str(err.value)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ValueError, match="cannot be read") as err:
        load_text_data(tmp_path / "nowhere.txt")
    assert "nowhere.txt" in str(err.value)
    with pytest.raises(ValueError, match="cannot be read"):
        load_text_data(tmp_path)


def test_too_small_for_the_sequence_length(tmp_path):
    path = tmp_path / "short.txt"
    path.write_text("a short text of a few dozen bytes, not enough.\n")
    data = load_text_data(path)
    with pytest.raises(ValueError, match=r"val split .* fewer than seq_len \+ 1 = 33"):
        data.check_fits(32)
    with pytest.raises(ValueError, match="seq_len"):
        data.batch("train", 2, 32, torch.Generator().manual_seed(0))


def test_bad_arguments():
    with pytest.raises(ValueError, match="val_fraction"):
        load_text_data(val_fraction=1.0)
    with pytest.raises(ValueError, match="at least one file"):
        load_text_data([])
