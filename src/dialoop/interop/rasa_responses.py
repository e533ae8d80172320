"""Rasa responses as dialoop templates (Jinja, sandboxed).

A response's variations become one template that picks one at random; variations with a
``condition`` on slots come first, tested in order; ``{slot}`` placeholders read the
slot (``slots.get('slot')``, so a missing one reads "None" as in Rasa); any other brace is
literal text. Images, buttons, custom payloads and channel-specific variations are not
converted (dialoop answers in text) and are reported.
"""

from __future__ import annotations

import re
from typing import Any

from dialoop.interop.rasa_files import Skipped, line_of

__all__ = ["PLACEHOLDER", "templates"]

PLACEHOLDER = re.compile(r"\{(\w+)\}")


def templates(responses: dict[str, Any], combined: set[str], tools: set[str], *, file: str,
              skipped: list[Skipped]) -> dict[str, str]:
    """The templates of a domain's responses, of the runs of them said in one turn
    (``utter_a+utter_b``) and of what each custom action answered."""
    out: dict[str, str] = {}
    for name, variations in responses.items():
        out[name] = _template(name, variations or [], file, skipped)
    for tool in tools:  # what a custom action answered
        out.setdefault(tool, "{% if result %}{{ result.text }}{% endif %}")
    for name in sorted(combined):
        parts = name.split("+")
        if len(parts) > 1 and all(x in out for x in parts):
            out[name] = "\n".join(out[x] for x in parts)
    out.setdefault("tool_failed", "Sorry, that did not work: {{ error }}")
    return out


def _template(name: str, variations: list[Any], file: str, skipped: list[Skipped]) -> str:
    """A Jinja template for a response: one variation chosen at random, conditional ones
    first when their slot conditions hold."""
    plain, conditional = [], []
    for v in variations:
        if not isinstance(v, dict) or not v.get("text"):
            skipped.append(Skipped(file, line_of(v, line_of(variations)),
                                   f"response {name!r}: a variation without text (image, "
                                   "custom payload) is not converted"))
            continue
        extra = sorted(set(v) - {"text", "condition", "channel"})
        if extra:
            skipped.append(Skipped(file, line_of(v), f"response {name!r}: "
                                   f"{', '.join(extra)} not converted (dialoop answers "
                                   "in text)"))
        if v.get("channel"):
            skipped.append(Skipped(file, line_of(v), f"response {name!r}: the "
                                   f"variation for channel {v['channel']!r} is left out"))
            continue
        body = _jinja(str(v["text"]).strip())
        tests = [f"slots.get({c['name']!r}) == {c.get('value')!r}"
                 for c in v.get("condition") or [] if isinstance(c, dict) and "name" in c]
        (conditional if tests else plain).append((" and ".join(tests), body))
    if len(plain) == 1:
        default = plain[0][1]
    elif plain:
        choices = "".join(f"{{% {'if' if i == 0 else 'elif'} n == {i} %}}{b}"
                          for i, (_, b) in enumerate(plain))
        default = f"{{% set n = range({len(plain)}) | random %}}{choices}{{% endif %}}"
    else:
        default = ""
    if not conditional:
        return default
    text = "".join(f"{{% {'if' if i == 0 else 'elif'} {t} %}}{b}"
                   for i, (t, b) in enumerate(conditional))
    return f"{text}{{% else %}}{default}{{% endif %}}"


def _jinja(text: str) -> str:
    """Rasa's ``{slot}`` placeholders as Jinja; any other brace is literal text."""
    parts = PLACEHOLDER.split(text)
    out = []
    for i, part in enumerate(parts):
        if i % 2:
            out.append(f"{{{{ slots.get({part!r}) }}}}")
        elif any(c in part for c in "{}%#"):
            out.append(f"{{% raw %}}{part}{{% endraw %}}")
        else:
            out.append(part)
    return "".join(out)
