"""Readers on real files: the embedded corpus, column files with their quirks, tag schemes."""

import hashlib

import numpy as np

import pytest

from seqlab.data import embedded
from seqlab.data.conll import ColumnFormat, read_conll
from seqlab.data.corpus import split_stats
from seqlab.data.schemes import check_tags, detect_scheme, entity_spans, iob2_to_bioes, to_iob2
from seqlab.data.sources import split_three
from seqlab.data.vocab import Vocabulary, length_batches
from seqlab.errors import DataError


def test_embedded_corpus_has_the_published_counts():
    sentences = embedded.read_embedded_wnut16()
    stats = split_stats(sentences)
    assert stats["sentences"] == 2394 and stats["tokens"] == 46469
    types = {k for k in stats if k.startswith("entities_")}
    assert len(types) == 10 and stats["entities"] == 1496 and stats["entities_person"] == 449


def test_embedded_corpus_checksum_mismatch_fails_clearly(monkeypatch):
    monkeypatch.setattr(embedded, "SHA256", hashlib.sha256(b"something else").hexdigest())
    with pytest.raises(DataError, match="sha256 .* differs"):
        embedded.read_embedded_wnut16()


def test_split_is_deterministic_by_seed_and_disjoint():
    sentences = embedded.read_embedded_wnut16()
    a = split_three(sentences, 0.1, 0.1, seed=42)
    b = split_three(sentences, 0.1, 0.1, seed=42)
    c = split_three(sentences, 0.1, 0.1, seed=7)
    assert a == b and a != c
    assert [len(x) for x in a] == [1916, 239, 239]
    ids = [{id(s) for s in part} for part in a]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])


def write(tmp_path, name, text, encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def test_reader_handles_tab_breaks_docstart_crlf_and_zero_width(tmp_path):
    text = (
        "-DOCSTART- -X- O O\r\n\r\n"
        "EU NNP B-NP I-ORG\r\nrejects VBZ B-VP O\r\n\t\r\n"  # a TAB-only line ends a sentence
        "-DOCSTART- -X- -X- O\r\n"  # no blank line after this one
        "\u200bPeter NNP B-NP I-PER\r\nBlackburn NNP I-NP I-PER\r\n"
    )
    sents = read_conll(write(tmp_path, "a.txt", text), ColumnFormat(scheme="iob1"))
    assert [s.tokens for s in sents] == [("EU", "rejects"), ("Peter", "Blackburn")]
    assert [s.tags for s in sents] == [("B-ORG", "O"), ("B-PER", "I-PER")]  # IOB1 -> IOB2


def test_reader_columns_and_separator(tmp_path):
    path = write(tmp_path, "b.tsv", "New York\tNNP\tB-LOC\nis\tVBZ\tO\n")
    sents = read_conll(path, ColumnFormat(token_col=0, tag_col=2, sep="\t", scheme="iob2"))
    assert sents[0].tokens == ("New York", "is") and sents[0].tags == ("B-LOC", "O")


def test_wrong_column_count_names_file_line_and_shows_it(tmp_path):
    path = write(tmp_path, "c.txt", "EU B-ORG\nrejects O\n\nbad line O\n")
    with pytest.raises(DataError, match=r"c\.txt:4: expected 2 columns, found 3: 'bad line O'"):
        read_conll(path)


@pytest.mark.parametrize("tag, scheme", [("B_PER", "iob2"), ("I-", "iob2"), ("I-PER", "iob2")])
def test_tag_that_breaks_the_scheme_names_file_line(tmp_path, tag, scheme):
    path = write(tmp_path, "d.txt", f"a O\n\nb O\nc {tag}\n")
    with pytest.raises(DataError, match=r"d\.txt:4: "):
        read_conll(path, ColumnFormat(scheme=scheme))


def test_empty_file_and_file_without_sentences(tmp_path):
    with pytest.raises(DataError, match="no sentences"):
        read_conll(write(tmp_path, "e.txt", ""))
    with pytest.raises(DataError, match="no sentences"):
        read_conll(write(tmp_path, "f.txt", "-DOCSTART- -X- O O\n\n\t\n"))


def test_invalid_bytes_name_the_encoding_option(tmp_path):
    path = write(tmp_path, "g.txt", "caf\u00e9 O\n", encoding="latin-1")
    with pytest.raises(DataError, match=r"g\.txt:1: .*data\.encoding"):
        read_conll(path)
    assert read_conll(path, ColumnFormat(encoding="latin-1"))[0].tokens == ("caf\u00e9",)


def test_scheme_detection_and_conversions():
    assert detect_scheme([["I-PER", "O"]]) == "iob1"
    assert detect_scheme([["B-PER", "I-PER", "O"]]) == "iob2"
    assert detect_scheme([["S-PER", "O"]]) == "bioes"
    iob2 = ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC"]
    bioes = iob2_to_bioes(iob2)
    assert bioes == ["B-PER", "E-PER", "O", "S-LOC", "B-LOC", "E-LOC"]
    assert to_iob2(bioes, "bioes") == iob2
    assert to_iob2(["I-PER", "I-PER", "B-PER", "O", "I-LOC"], "iob1") == ["B-PER", "I-PER", "B-PER", "O", "B-LOC"]
    check_tags(bioes, "bioes")
    assert entity_spans(iob2) == [("PER", 0, 2), ("LOC", 3, 4), ("LOC", 4, 6)]


def test_vocabulary_from_train_only_and_length_batches():
    sentences = embedded.read_embedded_wnut16()[:200]
    vocab = Vocabulary.build(sentences[:100])
    assert vocab.labels[0] == "O" and vocab.words[:2] == ["<pad>", "<unk>"]
    assert 0 < vocab.oov_rate(sentences[100:]) < 1 and vocab.oov_rate(sentences[:100]) == 0
    assert Vocabulary.from_json(vocab.to_json()) == vocab
    x = vocab.encode_tokens([["a", "bb"], ["c"]])
    assert x["words"].shape == (2, 2) and x["words"][1, 1] == 0 and x["chars"].shape == (2, 2, 2)
    import numpy as np

    lengths = [len(s) for s in sentences]
    batches = length_batches(lengths, 16, np.random.default_rng(0))
    assert sorted(np.concatenate(batches).tolist()) == list(range(200))
    padded = sum(max(lengths[i] for i in b) * len(b) for b in batches)
    naive = sum(max(lengths[i] for i in range(s, min(s + 16, 200))) * len(range(s, min(s + 16, 200))) for s in range(0, 200, 16))
    assert padded < naive  # grouping by length saves padding


def test_a_corpus_encoded_once_cuts_the_batches_encode_tokens_and_encode_tags_give():
    """Training batches come from seqlab.data.vocab.EncodedCorpus (no string work per epoch); every batch,
    empty sentences, unknown characters and over-long words included, equals the per-batch encoders'."""
    from seqlab.data.corpus import Sentence
    from seqlab.data.vocab import Vocabulary

    rng = np.random.default_rng(0)
    tokens = [tuple("".join(rng.choice(list("aB3xé-"), size=rng.integers(1, 30))) for _ in range(rng.integers(0, 9)))
              for _ in range(60)]
    sentences = [Sentence(t, tuple(rng.choice(["O", "B-X", "I-X", "B-Y"], size=len(t)))) for t in tokens]
    vocab = Vocabulary.build(sentences[:30], max_word_len=20)  # the rest holds unknown words, characters, tags
    encoded = vocab.encode_corpus([s.tokens for s in sentences], [s.tags for s in sentences])
    for _ in range(40):
        idx = rng.choice(len(sentences), size=rng.integers(1, 9), replace=False)
        x, y = encoded.batch(idx)
        batch = [sentences[i] for i in idx]
        expected = vocab.encode_tokens([s.tokens for s in batch])
        for key in ("words", "chars", "casing"):
            assert x[key].shape == expected[key].shape and (x[key] == expected[key]).all()
        assert (y == vocab.encode_tags([s.tags for s in batch], expected["words"].shape[1])).all()
