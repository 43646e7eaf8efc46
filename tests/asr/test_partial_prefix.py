"""PartialPrefixes: local agreement of a live utterance's last two partial decodes."""
import pytest

from asr.partial_prefix import PartialPrefixes, agreed_prefix


def starts_word(token):
    return token % 10 == 0  # in these tests 10, 20, 30 ... begin words


@pytest.mark.parametrize("older, newer, expected", [
    ((10, 11, 20), (10, 11, 20, 30), (10, 11, 20)),   # the older decode is all agreed
    ((10, 11, 20, 21), (10, 11, 20, 22), (10, 11)),   # they part inside a word: cut before it
    ((10, 11), (20, 21), ()),                           # nothing in common
    ((10, 11, 20), (10, 11, 20), (10, 11, 20)),        # the same decode twice
    ((), (10,), ()),
])
def test_agreed_prefix_ends_where_the_newer_decode_starts_a_word(older, newer, expected):
    assert agreed_prefix(older, newer, starts_word) == expected


def test_the_two_decodes_of_the_most_audio_agree_even_out_of_order():
    prefixes = PartialPrefixes(starts_word)
    prefixes.add("u", 16000, (10, 11))
    assert prefixes.prefix("u", 32000) == ()           # one decode agrees with nothing yet
    prefixes.add("u", 48000, (10, 11, 20, 30))
    prefixes.add("u", 32000, (10, 11, 20, 21))         # finished late: still one of the newest two
    assert prefixes.prefix("u", 64000) == (10, 11, 20)
    assert prefixes.prefix("u", 40000) == ()            # a partial of less audio trusts no longer decode
    assert prefixes.prefix("other", 64000) == ()


def test_forget_and_the_bound_on_utterances():
    prefixes = PartialPrefixes(starts_word, max_utterances=2)
    for utterance in ("a", "b", "c"):
        prefixes.add(utterance, 1, (10,))
    assert list(prefixes.decodes) == ["b", "c"]        # the oldest went
    prefixes.forget(lambda utterance: utterance != "b")
    assert list(prefixes.decodes) == ["c"]
