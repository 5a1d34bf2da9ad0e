"""How caption decoding is laid out over the machine's cores (transcribe/decoders.py, pure)."""

from __future__ import annotations

import pytest

from peerwell.config import load_settings
from transcribe.decoders import MAX_AUTO_DECODERS, DecoderLayout, decoder_layout, usable_cores


def test_one_single_threaded_decoder_per_core_by_default() -> None:
    assert decoder_layout(2) == DecoderLayout(workers=2, cpu_threads=1)
    assert decoder_layout(1) == DecoderLayout(workers=1, cpu_threads=1)
    # Capped (each decoder holds a model replica); the spare cores go to the decoders' threads.
    assert decoder_layout(16) == DecoderLayout(workers=MAX_AUTO_DECODERS, cpu_threads=16 // MAX_AUTO_DECODERS)


def test_nodes_on_one_machine_split_its_cores() -> None:
    assert decoder_layout(2, nodes=2) == DecoderLayout(1, 1)
    assert decoder_layout(8, nodes=2) == DecoderLayout(4, 1)
    assert decoder_layout(2, nodes=4) == DecoderLayout(1, 1)  # never less than one


def test_an_operators_count_gets_the_cores_shared_out() -> None:
    assert decoder_layout(2, workers=1) == DecoderLayout(1, 2)  # the layout before this module
    assert decoder_layout(2, workers=3) == DecoderLayout(3, 1)
    with pytest.raises(ValueError):
        decoder_layout(2, workers=0)


def test_settings_leave_the_count_to_the_machine_unless_set() -> None:
    settings = load_settings(None, {}, environ={})
    assert settings.captions.workers is None and settings.captions.nodes == 1
    assert load_settings(None, {}, environ={"PEERWELL_CAPTIONS_WORKERS": "1"}).captions.workers == 1
    assert usable_cores() >= 1
    assert str(decoder_layout(2)) == "2 decoders x 1 thread"
