"""LocalAgreement-2, driven by scripted hypotheses: exactly what gets committed, and when."""

from __future__ import annotations

from transcribe.commit import LocalAgreement, Word, completed_boundary, join_words, normalize_word


def hyp(*spec: tuple[float, float, str]) -> list[Word]:
    return [Word(a, b, t) for a, b, t in spec]


def texts(words: list[Word]) -> list[str]:
    return [w.text.strip() for w in words]


def test_first_hypothesis_commits_nothing() -> None:
    la = LocalAgreement()
    assert la.update(hyp((0.0, 0.4, " Hello"), (0.4, 0.9, " every"))) == []
    assert texts(la.tail) == ["Hello", "every"]
    assert la.committed == []


def test_commits_longest_common_prefix_of_two_consecutive_hypotheses() -> None:
    la = LocalAgreement()
    la.update(hyp((0.0, 0.4, " Hello"), (0.4, 0.9, " every")))
    committed = la.update(hyp((0.0, 0.4, " Hello"), (0.4, 1.0, " everyone,"), (1.1, 1.4, " thank")))
    assert texts(committed) == ["Hello"]
    assert texts(la.tail) == ["everyone,", "thank"]
    # Third pass agrees with the second on two more words; the new last word stays tentative.
    committed = la.update(
        hyp((0.0, 0.4, " Hello"), (0.4, 1.0, " everyone,"), (1.1, 1.4, " thank"), (1.4, 1.6, " you."))
    )
    assert texts(committed) == ["everyone,", "thank"]
    assert texts(la.tail) == ["you."]
    assert join_words(la.committed) == "Hello everyone, thank"


def test_the_sequence_of_commits_for_a_scripted_stream() -> None:
    script = [
        hyp((0.0, 0.3, " I"), (0.3, 0.6, " want")),
        hyp((0.0, 0.3, " I"), (0.3, 0.6, " want"), (0.6, 0.8, " to")),
        hyp((0.0, 0.3, " I"), (0.3, 0.6, " want"), (0.6, 0.8, " two"), (0.8, 1.1, " talk")),
        hyp(
            (0.0, 0.3, " I"),
            (0.3, 0.6, " want"),
            (0.6, 0.8, " to"),
            (0.8, 1.1, " talk"),
            (1.1, 1.3, " about"),
        ),
        hyp(
            (0.0, 0.3, " I"),
            (0.3, 0.6, " want"),
            (0.6, 0.8, " to"),
            (0.8, 1.1, " talk"),
            (1.1, 1.3, " about"),
        ),
    ]
    la = LocalAgreement()
    commits = [texts(la.update(h)) for h in script]
    # "to"/"two" disagree, so nothing after "want" commits until two passes agree again.
    assert commits == [[], ["I", "want"], [], [], ["to", "talk", "about"]]
    assert la.tail == []


def test_case_and_punctuation_changes_do_not_block_agreement() -> None:
    la = LocalAgreement()
    la.update(hyp((0.0, 0.5, " hello"), (0.5, 1.0, " world")))
    committed = la.update(hyp((0.0, 0.5, " Hello,"), (0.5, 1.0, " world."), (1.2, 1.5, " How")))
    assert texts(committed) == ["Hello,", "world."]  # the newer spelling wins


def test_committed_words_are_not_committed_again_when_audio_is_redecoded() -> None:
    la = LocalAgreement()
    la.update(hyp((0.0, 0.5, " one"), (0.5, 1.0, " two")))
    la.update(hyp((0.0, 0.5, " one"), (0.5, 1.0, " two"), (1.0, 1.5, " three")))
    assert texts(la.committed) == ["one", "two"]
    # Re-decoding the buffer: "two" now appears later (word times jitter) and would be a duplicate.
    again = hyp((0.0, 0.5, " one"), (1.0, 1.05, " two"), (1.05, 1.5, " three"), (1.5, 2.0, " four"))
    assert texts(la.update(again)) == ["three"]  # "two" de-duplicated; "three" agrees with the last tail
    assert texts(la.tail) == ["four"]
    assert texts(la.update(again)) == ["four"]
    assert texts(la.committed) == ["one", "two", "three", "four"]


def test_a_line_said_again_after_the_committed_one_is_not_taken_for_a_re_decode() -> None:
    # endgame_nagg_nell.wav: one voice says "Ah, that's a good story.", the other says it again 0.3 s later
    # in the same utterance. The words match the last committed ones, but they lie after them in the audio:
    # new speech, not the committed words re-decoded (that collapsed the two lines into one).
    line = ((14.34, 14.74, " Ah,"), (14.80, 14.98, " that's"), (14.98, 15.02, " a"), (15.02, 15.14, " good"),
            (15.14, 15.54, " story."))
    again = ((15.88, 15.96, " Ah,"), (16.02, 16.22, " that's"), (16.22, 16.26, " a"), (16.26, 16.40, " good"),
             (16.40, 16.82, " story."))
    la = LocalAgreement()
    la.update(hyp(*line))
    la.update(hyp(*line, again[0]))
    assert join_words(la.committed) == "Ah, that's a good story."
    assert join_words(la.finish(hyp(*line, *again))) == "Ah, that's a good story."
    assert join_words(la.committed) == "Ah, that's a good story. Ah, that's a good story."


def test_finish_commits_the_final_hypothesis_after_the_committed_prefix() -> None:
    la = LocalAgreement()
    la.update(hyp((0.0, 0.5, " Thank"), (0.5, 0.8, " you")))
    la.update(hyp((0.0, 0.5, " Thank"), (0.5, 0.8, " you"), (0.8, 1.0, " all")))
    final = la.finish(hyp((0.0, 0.5, " Thank"), (0.5, 0.8, " you"), (0.8, 1.0, " all."), (1.0, 1.3, " Bye.")))
    assert texts(final) == ["all.", "Bye."]
    assert join_words(la.committed) == "Thank you all. Bye."
    assert la.tail == []


def test_finish_without_a_new_hypothesis_commits_the_tail() -> None:
    la = LocalAgreement()
    la.update(hyp((0.0, 0.5, " so"), (0.5, 0.9, " tired")))
    assert texts(la.finish()) == ["so", "tired"]


def test_committed_prefix_never_shrinks_whatever_the_hypotheses_say() -> None:
    la = LocalAgreement()
    seen: list[str] = []
    script = [
        hyp((0.0, 0.4, " we"), (0.4, 0.8, " can")),
        hyp((0.0, 0.4, " we"), (0.4, 0.8, " can"), (0.8, 1.2, " talk")),
        hyp((0.0, 0.4, " she"), (0.4, 0.8, " cannot")),  # a bad pass contradicting committed text
        hyp((0.0, 0.4, " we"), (0.4, 0.8, " can"), (0.8, 1.2, " talk"), (1.2, 1.5, " now")),
    ]
    for h in script:
        la.update(h)
        text = join_words(la.committed)
        assert text.startswith(seen[-1]) if seen else True
        seen.append(text)
    assert seen == ["", "we can", "we can", "we can"]


def test_release_hands_over_words_before_a_boundary() -> None:
    la = LocalAgreement()
    words = hyp((0.0, 0.5, " Hi."), (0.6, 1.0, " I"), (1.0, 1.4, " slept"))
    la.update(words)
    la.update(words)
    assert texts(la.release_until(0.55)) == ["Hi."]
    assert texts(la.committed) == ["I", "slept"]
    # A boundary inside the last word's trailing edge still releases that word (it started before).
    assert texts(la.release_until(1.2)) == ["I", "slept"]


def test_completed_boundary_ignores_the_last_segment_and_uncommitted_audio() -> None:
    assert completed_boundary([2.0, 5.0, 9.0], committed_end=6.0) == 5.0
    assert completed_boundary([2.0, 5.0, 9.0], committed_end=4.0) == 2.0
    assert completed_boundary([9.0], committed_end=10.0) is None  # the only segment may still grow
    assert completed_boundary([3.0, 9.0], committed_end=1.0) is None


def test_normalize_word() -> None:
    assert normalize_word(" Hello,") == "hello"
    assert normalize_word("¿Qué?") == "qué"
    assert normalize_word(" 你好。") == "你好"


def test_a_pause_is_settled_once_every_word_before_it_is_committed() -> None:
    from transcribe.stream import Pause, pause_within

    # Stream samples at 16 kHz: a pause from 10.30 s to 10.78 s, its middle at 10.54 s.
    rate = 16_000
    pause = Pause(int(10.30 * rate), int(10.78 * rate))
    # Committed words going on past the pause: settled (two decodes agreed on a word after it).
    assert pause_within([pause], 11.0 * rate) == pause
    # Committed up to the pause and the newest decode's next word after it: settled with one decode
    # (two_cities.wav: committed to 10.06 s, next word from 10.74 s; Silero lags the last word's end).
    assert pause_within([pause], 10.06 * rate, next_word_start=10.74 * rate, reach=0.3 * rate) == pause
    # ...but not if a word not yet agreed on starts before the pause (the cut would split or drop it),
    assert pause_within([pause], 10.06 * rate, next_word_start=10.10 * rate, reach=0.3 * rate) is None
    # ...nor if the committed words stop well short of it (something uncommitted may lie between).
    assert pause_within([pause], 9.5 * rate, next_word_start=10.74 * rate, reach=0.3 * rate) is None
    # Without a next word there is nothing to say the pause was reached.
    assert pause_within([pause], 10.06 * rate, reach=0.3 * rate) is None
    # The latest settled pause wins.
    early = Pause(int(8.0 * rate), int(8.4 * rate))
    assert pause_within([early, pause], 9.0 * rate) == early
    assert pause_within([early, pause], 12.0 * rate) == pause
