"""Evaluation harnesses: each runs the real parts it measures, from above them.

- :mod:`~dialoop.eval.dialogue`: scripted test dialogues (intent accuracy, slot F1,
  joint goal accuracy, action accuracy, task success) — ``dialoop eval dialogue``.
- :mod:`~dialoop.eval.kg`: knowledge-graph question answering per question type —
  ``dialoop eval kg``.
- :mod:`~dialoop.eval.model`: a trained model against its base on held-out dialogues —
  ``dialoop eval model``.

They sit above the layers they measure (dialogue, knowledge, train) and compose what
they run through :func:`~dialoop.assistant.open_assistant`, like any other caller.
"""
