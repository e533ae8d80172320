"""The LoRA training loop on a tiny random model: it trains, and its shortcut is exact."""

from __future__ import annotations

import pytest
import torch

from dialoop.learn.consolidate import (
    Example,
    TrainConfig,
    _encode,
    _forward,
    _hidden_at,
    _top_blocks,
    build_examples,
    paraphrases,
    train_lora,
)

EXAMPLES = [
    Example("lesson", "Who is the CEO of Zorvath Dynamics?", "Mirela Quonst", lesson_id=1),
    Example("names", "Zorvath Dynamics?", "Mirela Quonst", lesson_id=1),
    Example("preference", "Capital of Veltria?", "Karmoss.", rejected="Paris.", lesson_id=2),
    Example("replay", "What is 2 plus 2?", "2 plus 2 is 4."),
]


@pytest.mark.slow
def test_training_changes_the_adapter_and_only_the_top_blocks(tiny_model, hf_tokenizer
                                                               ) -> None:  # type: ignore[no-untyped-def]
    peft, result = train_lora(tiny_model, hf_tokenizer, EXAMPLES,
                              TrainConfig(layers=2, epochs=3, batch_size=2, lr=1e-2, min_steps=1))
    assert result.changed
    assert result.steps == 6 and len(result.losses) == 6
    assert all(torch.isfinite(torch.tensor(result.losses)))
    lora = {n for n, _ in peft.named_parameters() if "lora_" in n}
    assert lora and not any(".layers.0." in n for n in lora)  # below the top 2: untouched


def test_cached_hidden_states_give_the_full_models_logits(tiny_model, hf_tokenizer
                                                           ) -> None:  # type: ignore[no-untyped-def]
    peft, _ = train_lora(tiny_model, hf_tokenizer, EXAMPLES[:1],
                         TrainConfig(layers=2, epochs=2, batch_size=1, lr=1e-2, min_steps=1))
    config = TrainConfig()
    items = [_encode(hf_tokenizer, ex, config.max_answer_tokens) for ex in EXAMPLES[:2]]
    base = peft.get_base_model()
    with torch.no_grad():
        for item in items:
            item.hidden = _hidden_at(base, item, first=1)
        with _top_blocks(base, 1):
            fast, target, _ = _forward(peft, [i.hidden for i in items], [i.labels for i in items])
        full = []
        for item in items:  # the plain way: the whole model, every position
            logits = peft(input_ids=torch.tensor([item.input_ids])).logits[0]  # (T, vocab)
            labels = torch.tensor(item.labels[1:])
            full.append(logits[:-1][labels != -100])
    assert torch.allclose(fast, torch.cat(full), atol=1e-4)


def test_rewordings_names_and_the_held_out_rewording() -> None:
    q = "Who is the CEO of Zorvath Dynamics?"
    variants = paraphrases(q)
    assert variants[0] == q and len(variants) == len(set(variants)) >= 5

    class L:
        def __init__(self, id: int, question: str) -> None:
            self.id, self.kind, self.question, self.answer, self.rejected = (
                id, "correction", question, "Mirela Quonst", None)

    examples, held = build_examples([L(7, q)], [("Hi", "Hello!")])
    assert held[7] == variants[-1:]
    assert all(e.question != variants[-1] for e in examples)  # held out from training
    assert [(e.kind, e.question) for e in examples] == [
        ("lesson", q), ("paraphrase", variants[1]), ("paraphrase", variants[2]),
        ("names", "Zorvath Dynamics?"), ("replay", "Hi")]
    # Two lessons about the same names: their names alone would teach two answers.
    examples, _ = build_examples([L(1, q), L(2, "Where is Zorvath Dynamics based?")])
    assert "names" not in [e.kind for e in examples]


def test_many_examples_train_fewer_epochs_within_the_presentation_budget() -> None:
    config = TrainConfig(epochs=5, batch_size=8, max_presentations=8000, min_steps=30)
    assert config.epochs_for(80) == 5  # 20 lessons: every epoch
    assert config.epochs_for(2000) == 4  # 500 lessons: 8,000 presentations
    assert config.epochs_for(100_000) == 1  # never zero
    assert config.epochs_for(12) == 15  # three lessons: two batches an epoch, 30 steps
