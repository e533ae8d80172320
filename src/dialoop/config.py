"""Typed settings: defaults < ``$DIALOOP_HOME/dialoop.toml`` < ``DIALOOP_*`` env < arguments.

One :class:`Settings` object is loaded once (``load_settings()``) and passed
explicitly to whatever needs it; nothing reads the environment behind its back.

    # ~/.dialoop/dialoop.toml
    model = "default"          # or a .gguf path, an HF folder, a hub id
    temperature = 0.0
    max_tokens = 512

    DIALOOP_MODEL=/models/qwen.gguf dialoop chat
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from dialoop.errors import ConfigError

__all__ = ["Settings", "default_home", "load_settings"]

CONFIG_FILE_NAME = "dialoop.toml"
_HOST_NAME = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_.-]{0,252})")


def default_home() -> Path:
    """``$DIALOOP_HOME`` if set, else ``~/.dialoop``.

    :func:`load_settings` creates it 0700 if it does not exist (it holds every
    conversation); an existing directory keeps the mode its owner chose.
    """
    return Path(os.environ.get("DIALOOP_HOME") or Path.home() / ".dialoop").expanduser()


class Settings(BaseSettings):
    """Everything a user can configure. Each field is also ``DIALOOP_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="DIALOOP_", extra="forbid", frozen=True)

    home: Path = Field(default_factory=default_home)
    database_url: str | None = None
    """SQLAlchemy URL; default ``sqlite:///$DIALOOP_HOME/dialoop.db``."""
    db_timeout: float = Field(5.0, gt=0)
    """Seconds to wait for another process's database lock before giving up."""
    user: str = Field("local", min_length=1, max_length=128)
    """The user the CLI acts as."""

    model: str = "default"
    engine: Literal["llamacpp", "torch", "remote"] = "llamacpp"
    remote_url: str | None = None
    remote_api_key: str | None = None
    remote_model: str | None = None
    context_window: int | None = Field(None, ge=256)
    """Tokens of context to allocate; default: the model's own, at most 8192."""
    context_overflow: Literal["drop", "summarize"] = "drop"
    """What becomes of the older exchanges that no longer fit the context window: dropped,
    or summarised into the system message (labelled, cited in the trace). "drop" by
    measurement: the bundled 135M model answers no more early facts with a summary than
    without (benchmarks/bench_summary.py, 5 conversations: 2/25 vs 1/25, and 1/15 with the
    whole conversation in its window); a larger model may (docs/summaries.md)."""
    context_summarizer: Literal["model", "extractive"] = "extractive"
    """Who writes those summaries: the user's fact-stating sentences kept as they were said,
    or the model. "extractive" by measurement: its summaries held 100% of the early facts,
    the bundled model's 8%, at 3-5 s a summary (benchmarks/bench_summary.py)."""
    threads: int | None = Field(None, ge=1)
    prefix_cache_mb: int = Field(256, ge=0)
    """Memory for saved KV states of other sessions (0 turns the LRU off)."""
    batch_slots: int = Field(0, ge=0, le=64)
    """Answers the server decodes together in one llama.cpp context (``dialoop serve
    --batch-slots``; 0: off, a pool of ``--engines`` copies instead). See
    :mod:`dialoop.engine.batched` for what batched mode gives up (prefix reuse; adapters
    decode in groups)."""
    weight_format: str = "auto"
    """Weight format of a GGUF model on the llama.cpp engine: "auto" serves the format
    measured fastest on this host among those that answer as the original does (cached by
    ``dialoop models --bench``, run by ``make install``; the original file until then),
    "original" the file as it is, or a llama.cpp quantize type such as "Q8_0", derived
    from the file once and cached (docs/benchmarks.md, "Weight formats")."""

    adapter: str | None = None
    """Adapter to answer with by default: a line name, NAME@vN, or none."""
    system_prompt: str | None = None
    temperature: float = Field(0.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    top_k: int = Field(0, ge=0)
    max_tokens: int = Field(512, ge=1)
    repeat_penalty: float = Field(1.1, gt=0, le=2)
    seed: int | None = Field(None, ge=0)
    agent_max_steps: int = Field(4, ge=1, le=16)
    """Tool calls an agent turn may make before it must answer (``dialoop chat --agent``)."""
    agent_first: Literal["auto", "required"] = "auto"
    """Whether an agent turn's first step may answer at once ("auto") or must call a tool
    ("required"): the bundled 135M model rarely chooses a call by itself (docs/serving.md)."""
    serve_max_choices: int = Field(4, ge=1, le=16)
    """The largest ``n`` (answers per request) the OpenAI endpoint gives."""
    media_local_images: bool = False
    """Whether an ``image_url`` part may name a file on the server's disk (``file://`` or a
    path); off by default, since it lets any caller read the server's image files. Images
    are never fetched from the network."""
    answer_modality: Literal["text", "speech", "both"] = "text"
    """How answers are given where speech is possible (``dialoop ask``, ``dialoop chat``, the
    native API's ``POST /api/chat``): as text, spoken (a WAV file) or both. A per-request
    ``--modality`` / ``modality`` overrides it; a voice session (``dialoop chat --voice``, a
    spoken message) answers in speech unless told otherwise (docs/multimodal.md)."""

    serve_allowed_hosts: list[str] = Field(default_factory=list)
    """Host names the server answers to besides IP addresses and ``localhost``, e.g. its
    DNS name behind a proxy; ``"*"``: any. Other names get a 421 (a guard against DNS
    rebinding). ``dialoop serve --allow-host NAME`` (repeatable) sets it for one run."""
    serve_trusted_proxies: list[str] = Field(default_factory=list)
    """Addresses (or networks, like ``10.0.0.0/8``) of reverse proxies whose
    ``X-Forwarded-For``/``X-Forwarded-Proto`` headers are believed. Empty (the default):
    those headers are ignored, so that a client cannot pose as other addresses to dodge
    the per-address limit on failed API keys. Behind a proxy on this machine: ``["127.0.0.1"]``."""
    serve_max_messages: int = Field(1000, ge=1)
    """Messages one chat request may carry (POST /v1/chat/completions); more get a 400.
    Far beyond a real conversation, it bounds the work one request can cause."""
    serve_max_chars: int = Field(1_000_000, ge=1)
    """Characters of all the messages of one chat request together; more get a 413."""

    # knowledge (graph + documents): see docs/knowledge.md
    knowledge: bool = True
    """Look questions up in the knowledge graph and documents before answering."""
    knowledge_decline: bool = True
    """Say "I don't know" when a question is about the knowledge but it has no answer."""
    knowledge_answer: Literal["template", "model"] = "template"
    """Who words a graph answer: a fixed template (exact) or the model (from the facts)."""
    recommend: bool = True
    """Answer "what should I watch next?" in chat from the recommendation catalogue (when one
    is imported: ``dialoop recommend import``), and record the likes a user states."""
    recommend_explore: float = Field(0.1, ge=0.0, le=0.5)
    """The share of a recommendation list given to exploring (items from just below the top,
    marked as such): at most one in ten by default, none at 0."""
    # -- learning (dialoop.learn) ------------------------------------------------------
    admin_users: list[str] = Field(default_factory=lambda: ["local"])
    """Users who may create global lessons and promote or roll back adapters."""
    learn_memory: bool = True
    """Apply lessons from the correction memory to matching questions at once."""
    learn_memory_mode: Literal["auto", "prompt", "direct"] = "auto"
    """How a matched lesson shapes the answer: put it in the prompt, reply with the taught
    answer, or (auto) reply directly when the match is near-certain, else prompt."""
    learn_match_similarity: float = Field(0.72, ge=0, le=1)
    """Cosine similarity (names masked) a question needs to a lesson's question; its key
    terms must match too. Calibrated on benchmarks/data/learning_facts.jsonl: the highest
    value that still matches every paraphrase (docs/learning.md)."""
    learn_route_similarity: float = Field(0.72, ge=0, le=1)
    """The router of a consolidated adapter sends it a message only when the message matches
    one of the adapter's active lessons at this similarity (and their key terms); everything
    else goes to the base model, untouched."""
    learn_direct_similarity: float = Field(0.80, ge=0, le=1)
    """In auto mode, reply with the taught answer itself from this similarity up."""
    learn_supersede_similarity: float = Field(0.90, ge=0, le=1)
    """A new lesson replaces an older one in the same scope whose question is this close."""
    learn_auto: bool | None = None
    """Consolidate by itself in the background (after ``learn_auto_after`` new lessons or
    ratings, or when a server has been idle ``learn_auto_idle_seconds`` with some waiting).
    Unset: on in a server (``dialoop serve``, ``create_app``), off in the library and the
    other commands. ``dialoop serve --no-learn`` turns it off."""
    learn_auto_after: int = Field(5, ge=0)
    """New lessons and ratings since the last run that start a run (0: not by count)."""
    learn_auto_idle_seconds: float = Field(300.0, ge=0)
    """A server that has answered nothing for this long, with lessons or ratings waiting,
    starts a run (0: not by idleness)."""
    learn_rank: int = Field(32, ge=1, le=256)
    learn_layers: int = Field(4, ge=1)
    """LoRA goes on the top this-many transformer layers (training cost grows with it)."""
    learn_epochs: int = Field(5, ge=1, le=100)
    learn_lr: float = Field(3e-3, gt=0, le=1)
    learn_replay: int = Field(0, ge=0, le=30)
    """Replay prompts (the base model's own answers) trained on. The adapter's router keeps
    unrelated prompts off it, so none are needed by default (docs/learning.md)."""
    learn_gate_probes: int = Field(300, ge=0, le=300)
    """Unrelated prompts the gate checks locality on (with each lesson's near and sibling
    questions); only those the adapter's router lets through are generated."""
    learn_gate_sample: int = Field(100, ge=1)
    """Lessons the gate checks reliability and generalization on (an even sample of them
    when there are more)."""
    learn_threads: int = Field(1, ge=1)
    """Threads for consolidation. One by default: the worker runs beside a serving
    process, and spinning thread pools on a busy CPU collapse (measured on 2 loaded
    cores: llama.cpp 0.9 tok/s with 2 threads, 51 with 1; torch 5x slower)."""
    learn_gate_reliability: float = Field(0.90, ge=0, le=1)
    learn_gate_generalization: float = Field(0.70, ge=0, le=1)
    learn_gate_locality: float = Field(0.95, ge=0, le=1)
    learn_style_min_ratings: int = Field(20, ge=4)
    """Bare ratings (thumbs up or down without a correction) a user needs before their line
    gets a style adapter trained on them with KTO; a quarter are held out for the gate."""
    learn_style_route_similarity: float = Field(0.45, ge=0, le=1)
    """The style adapter answers a message only when the message is this similar (cosine of
    sentence vectors) to a question its user rated; everything else goes to the base model
    (calibrated on BANKING77 against general prompts, docs/learning.md)."""
    learn_gate_rated_behaviour: float = Field(0.6, ge=0, le=1)
    """The style adapter must order held-out rated answers as the user did (liked above
    disliked, relative to the base model) at least this often (0.5 is chance)."""
    # -- the online policy learner (dialoop.policy.online) ---------------------------
    policy_online: bool = False
    """Let the dialogue policy learn from live users (ratings, completed tasks) while it
    serves: a contextual bandit in front of the serving policy. Off unless an admin turns
    it on; it changes how a domain's assistant acts (docs/dialogue.md). A domain file can
    forbid it whatever this says (``policy: {online: false}``)."""
    policy_online_exploration: float = Field(0.05, ge=0, le=0.2)
    """Share of decisions that try an alternative to the serving policy's action (at most
    0.2, the cap of ``dialoop.policy.online.EXPLORATION_CAP``; 0: learn, never explore)."""
    policy_online_scope: Literal["user", "global"] = "user"
    """Whose feedback a user's policy learns from: their own (``user``) or everyone's."""

    @field_validator("serve_allowed_hosts")
    @classmethod
    def _bare_host_names(cls, names: list[str]) -> list[str]:
        for name in names:
            if name != "*" and not _HOST_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a host name: give names like "
                                 "'dialoop.example.com', without scheme, port or path, or '*'")
        return [n.lower().rstrip(".") for n in names]

    @field_validator("serve_trusted_proxies")
    @classmethod
    def _addresses(cls, entries: list[str]) -> list[str]:
        for entry in entries:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or network: give addresses "
                                 "like '127.0.0.1' or networks like '10.0.0.0/8'") from None
        return entries

    @field_validator("weight_format")
    @classmethod
    def _weight_format(cls, value: str) -> str:
        if value.lower() in ("auto", "original"):
            return value.lower()
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", value):
            raise ValueError(f"{value!r} is not a weight format: give 'auto', 'original' or a "
                             "llama.cpp quantize type such as 'Q8_0'")
        return value.upper()

    @model_validator(mode="after")
    def _learn_thresholds_ordered(self) -> Settings:
        if self.learn_direct_similarity < self.learn_match_similarity:
            raise ValueError(
                f"learn_direct_similarity ({self.learn_direct_similarity}) is below "
                f"learn_match_similarity ({self.learn_match_similarity}): a lesson cannot be "
                "certain enough to answer directly but not to match. Raise the first or "
                "lower the second."
            )
        return self

    @model_validator(mode="after")
    def _remote_needs_url(self) -> Settings:
        if self.engine == "remote" and not self.remote_url:
            raise ValueError(
                "engine = 'remote' needs remote_url: set DIALOOP_REMOTE_URL to the server's "
                "base URL, e.g. http://127.0.0.1:8000/v1"
            )
        return self

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'dialoop.db'}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML file lives in the home directory, which can itself be overridden.
        home = getattr(init_settings, "init_kwargs", {}).get("home") or default_home()
        toml = TomlConfigSettingsSource(settings_cls, toml_file=Path(home) / CONFIG_FILE_NAME)
        return (init_settings, env_settings, toml)


def load_settings(**overrides: Any) -> Settings:
    """Load settings, turning any validation problem into one clear ConfigError.

    ``None`` overrides are ignored, so CLI options can be passed straight through.
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        settings = Settings(**given)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    except ValueError as exc:  # a malformed dialoop.toml
        raise ConfigError(f"Cannot read {CONFIG_FILE_NAME}: {exc}") from None
    settings.home.mkdir(mode=0o700, parents=True, exist_ok=True)  # private when new
    return settings


def _describe(exc: ValidationError) -> str:
    problems = []
    for err in exc.errors():
        name = ".".join(str(p) for p in err["loc"]) or "settings"
        source = f"DIALOOP_{name.upper()} or {CONFIG_FILE_NAME}" if err["loc"] else CONFIG_FILE_NAME
        problems.append(f"{name} ({source}): {err['msg']}")
    return "Invalid setting: " + "; ".join(problems)
