"""Input layouts (fairseq's), SQuAD doc-stride windows and mapping spans back to text."""
import numpy as np
import pytest

from evaluation.encoding import encode_choices, encode_squad, encode_texts, load_tokenizer
from evaluation.readers import RaceExample, SquadExample
from evaluation.span_decode import best_span, decode_predictions
from evaluation.synthetic import make_tiny_checkpoint


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return load_tokenizer(make_tiny_checkpoint(tmp_path_factory.mktemp("ck")))


def test_sentence_and_pair_layout(tok):
    a = tok.encode("river stone", add_special_tokens=False).ids
    b = tok.encode("the key is zebra", add_special_tokens=False).ids
    assert encode_texts(tok, ["river stone"], None, 64) == [[0] + a + [2]]
    assert encode_texts(tok, ["river stone"], ["the key is zebra"], 64) == [[0] + a + [2, 2] + b + [2]]
    long_a = " ".join(["river"] * 50)
    (ids,) = encode_texts(tok, [long_a], ["the key is zebra"], 20)
    assert len(ids) == 20 and ids[0] == 0 and ids[-1] == 2 and ids.count(2) == 3
    assert ids[-1 - len(b):-1] == b                     # the short segment kept whole


def test_race_option_layout_and_cloze(tok):
    ex = RaceExample("x", "river stone table", "the key is _ .", ["zebra", "tiger", "otter", "panda"], 0, "high")
    rows = encode_choices(tok, [ex], max_len=64)[0]
    assert len(rows) == 4
    qa = tok.encode("the key is zebra .", add_special_tokens=False).ids
    art = tok.encode("river stone table", add_special_tokens=False).ids
    assert rows[0] == [0] + art + [2, 2] + qa + [2]
    short = encode_choices(tok, [ex], max_len=12, max_option_len=4)[0][0]
    assert len(short) <= 12 and short[-5:-1] == qa[:4]


def test_squad_windows_cover_the_answer_and_map_back(tok):
    words = [f"river{i % 7}" if i % 3 else "stone" for i in range(120)]
    ctx = " ".join(words[:70]) + " the key is walrus . " + " ".join(words[70:])
    start = ctx.index("walrus")
    ex = SquadExample("q", "what is the key ?", ctx, [{"text": "walrus", "answer_start": start}])
    windows = encode_squad(tok, [ex], max_len=48, doc_stride=16, max_query_len=16)
    assert len(windows) > 3
    assert all(len(w.input_ids) <= 48 for w in windows)
    with_answer = [w for w in windows if w.has_answer]
    assert with_answer and all(w.start == w.end == 0 for w in windows if not w.has_answer)
    for w in with_answer:
        a = w.offsets[w.start - w.context_start][0]
        b = w.offsets[w.end - w.context_start][1]
        assert ctx[a:b].strip() == "walrus"
    # all context tokens are covered by some window
    covered = {o for w in windows for o in w.offsets}
    assert len(covered) == len(tok.encode(ctx, add_special_tokens=False).ids)

    # decoding: logits peaked on the answer in one window give the answer text
    starts, ends = [], []
    for w in windows:
        s, e = np.zeros(len(w.input_ids)), np.zeros(len(w.input_ids))
        if w is with_answer[0]:
            s[w.start], e[w.end] = 5.0, 5.0
        starts.append(s)
        ends.append(e)
    assert decode_predictions([ex], windows, starts, ends) == {"q": "walrus"}
    # SQuAD 2.0: answerability below the threshold in every window -> empty answer
    assert decode_predictions([ex], windows, starts, ends, [0.2] * len(windows)) == {"q": ""}


def test_best_span_rules():
    s = np.array([0, 1, 9, 0, 0.0])
    e = np.array([0, 8, 0, 2, 0.0])
    assert best_span(s, e, 1, 4)[1:] == (2, 3)          # end before start is not allowed
    assert best_span(s, e, 1, 4, max_answer_tokens=1)[1:] in {(1, 1), (2, 2)}
    assert best_span(s, e, 3, 2) is None
