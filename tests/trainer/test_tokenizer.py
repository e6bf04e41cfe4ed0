import pytest

from trainer import tokenizer

TEXT = ["to be, or not to be: that is the question", "whether 'tis nobler in the mind to suffer"] * 50


def test_a_too_small_vocabulary_is_refused_before_rustbpe_sees_it():
    with pytest.raises(ValueError, match="vocab size"):
        tokenizer.train(TEXT, 200, "tiny")


def test_a_text_too_small_for_the_vocabulary_is_refused():
    with pytest.raises(ValueError, match="too small"):
        tokenizer.train(TEXT, 5000, "tiny")


def test_a_trained_tokenizer_round_trips_through_its_cache(tmp_path):
    path = tmp_path / "bpe300.json"
    trained = tokenizer.load_or_train(path, TEXT, 300, "tiny")
    loaded = tokenizer.load(path)
    assert trained.n_vocab == loaded.n_vocab == 300
    ids = loaded.encode_ordinary(TEXT[0])
    assert ids == trained.encode_ordinary(TEXT[0]) and loaded.decode(ids) == TEXT[0]


def test_special_tokens_have_no_bytes_and_others_have_their_utf8_length():
    encoding = tokenizer.train(TEXT, 300, "tiny")
    sizes = tokenizer.token_bytes(encoding)
    bos = encoding._special_tokens[tokenizer.BOS]
    assert sizes[bos] == 0
    assert sum(sizes[i] for i in encoding.encode_ordinary(TEXT[1])) == len(TEXT[1].encode())
