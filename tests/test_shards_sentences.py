"""The regex sentence splitter: boundaries, traps, and that it never changes tokenization."""
import pytest
from tests._shards_corpus import english_documents, write_corpus

from corpus import bpe
from corpus.sentences import sentence_cuts, split_sentences


@pytest.mark.parametrize("text,expected", [
    ("Mr. Smith paid $3.50 for it. Then he left! Did he? Yes.",
     ["Mr. Smith paid $3.50 for it.", " Then he left!", " Did he?", " Yes."]),
    ("J. K. Rowling met the U.S. team in Washington, D.C. on Monday. It was fun.",
     ["J. K. Rowling met the U.S. team in Washington, D.C. on Monday.", " It was fun."]),
    ('He said "Stop." Then "Go!" (Really.) Fine.',
     ['He said "Stop."', ' Then "Go!"', " (Really.)", " Fine."]),
    ("Version 3.14 is out. 2019 was good... And then?", ["Version 3.14 is out.",
                                                        " 2019 was good...", " And then?"]),
    ("e.g. this and i.e. that, etc. are fine. Dr. No agrees.",
     ["e.g. this and i.e. that, etc. are fine.", " Dr. No agrees."]),
    ("Headline without stop\nBody text here.\n\n  Second para.  \n",
     ["Headline without stop", "\nBody text here.", "\n\n  Second para.  \n"]),
    ("lowercase after stop. stays joined", ["lowercase after stop. stays joined"]),
    ("", []), ("   ", ["   "]), ("x", ["x"]),
])
def test_split(text, expected):
    got = split_sentences(text)
    assert got == expected
    assert "".join(got) == text


def test_cuts_sit_at_pretokenizer_boundaries():
    for text in english_documents(20):
        cuts = sentence_cuts(text)
        assert cuts[0] == 0 and cuts[-1] == len(text) and cuts == sorted(set(cuts))
        for c in cuts[1:-1]:
            assert not text[c - 1].isspace() and text[c].isspace()


def test_sentence_pieces_encode_like_the_whole_document(tmp_path):
    """The guarantee sharding relies on: encoding sentence pieces separately gives exactly
    the ids of the whole text, on real prose and on whitespace/quote oddities."""
    write_corpus(tmp_path, english_documents(), n_parts=1)
    bpe.train_tokenizer(tmp_path, vocab_size=800)
    tok = bpe.load_tokenizer(tmp_path)
    odd = ["Tabs\tthen.\tNext.  Double.   Triple.\r\nCRLF line.\n\n\nGap.",
           "Ends with space. ", "Quote: 'a.' 'B.' “C.” Next\u00a0one. Non\u00a0\nbreak.",
           "Numbers. 1. 2. 3.\nA.\nB."]
    for text in english_documents() + odd:
        whole = tok.encode(text, add_special_tokens=False).ids
        pieces = [t for p in split_sentences(text)
                  for t in tok.encode(p, add_special_tokens=False).ids]
        assert pieces == whole
