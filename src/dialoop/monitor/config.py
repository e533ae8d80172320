"""What a monitor watches for: its topics, its time buckets and its alert rules.

Read from a YAML file (``examples/sentiment_monitor/monitor.yaml`` is one), checked on
load; every problem names the field and how to fix it. Without a file the monitor has
one topic (``general``) and the three default rules below.

    bucket: 1h                 # s, m, h or d
    topics:
      rates:
        description: interest rates and mortgages
        keywords: [interest rate, mortgage]      # a whole-word match decides the topic
        examples: ["The bank raised its mortgage rates again."]
    alerts:
      - {name: negative-surge, kind: zscore, metric: negative, window: 12, above: 3}
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from dialoop.errors import ConfigError

__all__ = ["DEFAULT_RULES", "DEFAULT_TOPIC", "SENTIMENTS", "AlertRule", "MonitorConfig",
           "TopicSpec", "load_config", "parse_duration"]

SENTIMENTS = ("negative", "neutral", "positive")
DEFAULT_TOPIC = "general"  # every item that matches no configured topic
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")

RuleKind = Literal["threshold", "rate", "zscore"]
Metric = Literal["negative", "negative_share"]


@dataclass(frozen=True)
class TopicSpec:
    name: str
    description: str = ""
    keywords: tuple[str, ...] = ()
    examples: tuple[str, ...] = ()


@dataclass(frozen=True)
class AlertRule:
    """One rule over a topic's series of ``metric`` (per bucket).

    - ``threshold``: the bucket's value is at least ``above``.
    - ``rate``: the value is at least ``above`` times the previous bucket's (which counts
      as ``floor`` when it is lower, so 0 → 5 is a finite jump).
    - ``zscore``: the value is at least ``above`` standard deviations over the mean of the
      ``window`` buckets before it (their deviation counts as at least ``floor``).

    A bucket with fewer than ``min_items`` items of the topic never fires.
    """

    name: str
    kind: RuleKind
    metric: Metric = "negative"
    above: float = 3.0
    window: int = 12
    min_items: int = 5
    floor: float = 1.0

    def __post_init__(self) -> None:
        where = f"alert rule {self.name!r}"
        if not _NAME.match(self.name):
            raise ConfigError(f"{where}: a name has letters, digits, '_', '-' or '.'.")
        if self.kind not in ("threshold", "rate", "zscore"):
            raise ConfigError(f"{where}: kind is threshold, rate or zscore, not {self.kind!r}.")
        if self.metric not in ("negative", "negative_share"):
            raise ConfigError(f"{where}: metric is negative (a count) or negative_share, "
                              f"not {self.metric!r}.")
        if self.window < 2:
            raise ConfigError(f"{where}: window is at least 2 buckets, not {self.window}.")
        if self.above <= 0 or self.min_items < 0 or self.floor <= 0:
            raise ConfigError(f"{where}: above and floor are positive, min_items is not "
                              "negative.")


DEFAULT_RULES = (
    AlertRule("negative-share", "threshold", "negative_share", above=0.6, min_items=10),
    AlertRule("negative-jump", "rate", "negative", above=3.0, min_items=10, floor=2.0),
    AlertRule("negative-surge", "zscore", "negative", above=4.0, window=12, min_items=10,
              floor=2.0),
)


@dataclass(frozen=True)
class MonitorConfig:
    bucket_seconds: int = 3600
    topics: tuple[TopicSpec, ...] = ()
    rules: tuple[AlertRule, ...] = DEFAULT_RULES
    topic_similarity: float = 0.35  # nearest topic example below this: DEFAULT_TOPIC
    source: str = field(default="(built-in)", compare=False)

    def __post_init__(self) -> None:
        names = [t.name for t in self.topics]
        if len(set(names)) != len(names) or DEFAULT_TOPIC in names:
            raise ConfigError(f"{self.source}: topic names must differ and not be "
                              f"{DEFAULT_TOPIC!r} (items of no topic get it).")
        rules = [r.name for r in self.rules]
        if len(set(rules)) != len(rules):
            raise ConfigError(f"{self.source}: two alert rules have the same name.")
        if self.bucket_seconds < 1:
            raise ConfigError(f"{self.source}: bucket is at least 1s.")

    @property
    def topic_names(self) -> list[str]:
        return [t.name for t in self.topics] + [DEFAULT_TOPIC]


def load_config(path: Path | None) -> MonitorConfig:
    """The config in ``path`` (YAML), or the built-in one for None."""
    if path is None:
        return MonitorConfig()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as e:
        raise ConfigError(f"Cannot read the monitor config {path}: {e.strerror}.") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with bucket, topics and alerts.")
    unknown = set(raw) - {"bucket", "topics", "alerts", "topic_similarity"}
    if unknown:
        raise ConfigError(f"{path}: unknown keys {sorted(unknown)}; the keys are bucket, "
                          "topics, alerts and topic_similarity.")
    topics = tuple(_topic(path, name, spec) for name, spec in (raw.get("topics") or {}).items())
    rules = (tuple(_rule(path, r) for r in raw["alerts"]) if raw.get("alerts") is not None
             else DEFAULT_RULES)
    return MonitorConfig(bucket_seconds=parse_duration(str(raw.get("bucket", "1h")), path),
                         topics=topics, rules=rules,
                         topic_similarity=float(raw.get("topic_similarity", 0.35)),
                         source=str(path))


def parse_duration(text: str, where: Path | str = "bucket") -> int:
    """``"15m"`` → 900; a bare number is seconds."""
    m = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", text)
    if not m or int(m.group(1)) == 0:
        raise ConfigError(f"{where}: a bucket is a whole number with s, m, h or d "
                          f"(e.g. 15m, 1h), not {text!r}.")
    return int(m.group(1)) * _UNITS[m.group(2) or "s"]


def _topic(path: Path, name: Any, spec: Any) -> TopicSpec:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(f"{path}: topic {name!r}: a name has letters, digits, '_', '-', '.'.")
    spec = spec or {}
    if not isinstance(spec, dict):
        raise ConfigError(f"{path}: topic {name!r} needs a mapping (description, keywords, "
                          "examples).")
    keywords = tuple(str(k).lower() for k in spec.get("keywords") or ())
    examples = tuple(str(e) for e in spec.get("examples") or ())
    if not keywords and not examples:
        raise ConfigError(f"{path}: topic {name!r} has neither keywords nor examples: give "
                          "it some, or nothing can be recognised as it.")
    return TopicSpec(name, str(spec.get("description") or ""), keywords, examples)


def _rule(path: Path, raw: Any) -> AlertRule:
    if not isinstance(raw, dict) or "name" not in raw or "kind" not in raw:
        raise ConfigError(f"{path}: each alert is a mapping with at least name and kind.")
    known = {"name", "kind", "metric", "above", "window", "min_items", "floor"}
    if set(raw) - known:
        raise ConfigError(f"{path}: alert {raw['name']!r} has unknown keys "
                          f"{sorted(set(raw) - known)}; the keys are {sorted(known)}.")
    try:
        return AlertRule(**{k: v for k, v in raw.items()})
    except TypeError as e:
        raise ConfigError(f"{path}: alert {raw['name']!r}: {e}") from None
