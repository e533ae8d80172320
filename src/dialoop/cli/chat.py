"""``dialoop chat`` (the interactive REPL) and ``dialoop ask`` (one answer, for scripts)."""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import click

from dialoop.assistant import Assistant, Reply, open_assistant
from dialoop.cli import settings_from
from dialoop.dialogue.domain import load_domain
from dialoop.dialogue.session import ChatSession
from dialoop.errors import DialoopError, InvalidInputError

if TYPE_CHECKING:
    from dialoop.media.speech import Transcript

__all__ = ["COMMANDS", "SlashCommand", "ask", "chat"]

PROMPT = "you> "
MODALITIES = ("text", "speech", "both")


def _modality_option(default: str) -> Callable:
    return click.option("--modality", type=click.Choice(MODALITIES),
                        help=f"Answer as text, speech (a WAV file) or both (default: {default}).")


def model_options(f: Callable) -> Callable:
    """--model, --engine, --adapter and --system, shared by the commands that answer."""
    f = click.option("--system", help="System prompt for a new session.")(f)
    f = click.option("--adapter", metavar="NAME[@vN]|none",
                     help="Answer with this LoRA adapter (its serving version, or vN).")(f)
    f = click.option("--engine", type=click.Choice(["llamacpp", "torch", "remote"]),
                     help="Engine to run the model on (default llamacpp).")(f)
    f = click.option("--model", "model", metavar="SPEC",
                     help="'default', a .gguf file, an HF folder or a hub id.")(f)
    return f


@click.command()
@click.option("--session", "-s", "session_ref", metavar="NAME",
              help="Continue (or start) the session with this name or id.")
@model_options
@click.option("--user", help="Act as this user (default: the 'user' setting).")
@click.option("--domain", "domain", metavar="PATH",
              type=click.Path(dir_okay=False, path_type=Path),
              help="A domain file (intents, slots, tools); default: a general assistant.")
@click.option("--policy", metavar="rule|learned|VERSION",
              help="The domain's dialogue policy: its rules, its story-learned one, or a stored "
                   "version (vN, N, 'serving'; see `dialoop train policies`).")
@click.option("--agent", is_flag=True,
              help="Let the model call tools (calculator, time, knowledge, the domain's) "
                   "before it answers; /why shows the calls.")
@click.option("--voice", is_flag=True,
              help="Speak: a line may be the path of an audio file (transcribed), an empty "
                   "line records from the microphone when there is one; answers are spoken.")
@_modality_option("the answer_modality setting; speech with --voice")
@click.pass_context
def chat(ctx: click.Context, session_ref: str | None, model: str | None, engine: str | None,
         adapter: str | None, system: str | None, user: str | None,
         domain: Path | None, policy: str | None, agent: bool, voice: bool,
         modality: str | None) -> None:
    """Talk with the assistant. /help lists the commands; Ctrl-C stops an answer."""
    settings = settings_from(ctx, model=model, engine=engine, user=user, adapter=adapter)
    loaded = load_domain(domain) if domain else None  # a bad file fails before the model loads
    click.echo(f"Loading {settings.model} model…", err=True)
    with open_assistant(settings, domain=loaded, policy=policy) as bot:
        repl = Repl(bot, bot.session(session_ref, system=system), agent=agent, voice=voice,
                    modality=modality or ("speech" if voice else settings.answer_modality))
        repl.run()


@click.command()
@click.argument("question", required=False)
@click.option("--session", "-s", "session_ref", metavar="NAME",
              help="Ask within this session (created if new); default: a new session.")
@model_options
@click.option("--user", help="Act as this user.")
@click.option("--no-memory", is_flag=True, help="Answer without the correction memory.")
@click.option("--batch", type=click.File("r", encoding="utf-8"), metavar="FILE.jsonl",
              help='Answer every {"id": …, "question": …} line of FILE (- for stdin); '
                   "print one JSON answer per line.")
@click.option("--max-tokens", type=int, help="Longest answer, in tokens.")
@click.option("--temperature", type=float, help="0 = greedy (deterministic).")
@click.option("--seed", type=int, help="Seed for sampling.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@click.option("--speak", is_flag=True, help="Answer in speech (--modality speech).")
@_modality_option("the answer_modality setting")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="The WAV file of a spoken answer (default: $DIALOOP_HOME/voice/).")
@click.pass_context
def ask(ctx: click.Context, question: str | None, session_ref: str | None, model: str | None,
        engine: str | None, adapter: str | None, system: str | None, user: str | None,
        no_memory: bool, batch: TextIO | None, max_tokens: int | None,
        temperature: float | None, seed: int | None, as_json: bool, speak: bool,
        modality: str | None, output: Path | None) -> None:
    """Answer one QUESTION and print it (streamed, or as JSON with --json); --speak writes
    it spoken into a WAV file (-o)."""
    if (question is None) == (batch is None):
        raise click.UsageError("Give a QUESTION or --batch FILE.jsonl (one of them).")
    if speak and modality not in (None, "speech"):
        raise click.UsageError(f"--speak means --modality speech: drop one "
                               f"(--modality {modality} was given).")
    if batch is not None and (speak or modality not in (None, "text") or output):
        raise click.UsageError("--batch answers in text: drop --speak, --modality and -o.")
    items = _read_batch(batch) if batch is not None else []  # all checked before any answer
    settings = settings_from(ctx, model=model, engine=engine, user=user, adapter=adapter)
    how = "speech" if speak else modality or ("text" if batch else settings.answer_modality)
    if output is not None and how == "text":
        raise click.UsageError("-o is the file of a spoken answer: add --speak.")
    with open_assistant(settings) as bot:
        overrides = {k: v for k, v in
                     {"max_tokens": max_tokens, "temperature": temperature, "seed": seed}.items()
                     if v is not None}
        params = bot.default_params(**overrides)  # invalid values fail before anything is stored
        memory = False if no_memory else None
        if batch is not None:
            for item_id, text in items:
                reply = bot.ask(text, session=session_ref, params=params, system=system,
                                memory=memory)
                click.echo(json.dumps({"id": item_id, **_ask_json(reply)}, ensure_ascii=False))
            return
        assert question is not None
        stream = bot.stream(question, session=session_ref, params=params, system=system,
                            memory=memory)
        with ctrl_c_cancels(bot):
            for text in stream:
                if not as_json and how != "speech":
                    click.echo(text, nl=False)
        assert stream.reply is not None
        wrote = _spoken(bot, stream.reply, output) if how != "text" else None
        if as_json:
            audio = {"audio": str(wrote) if wrote else None} if how != "text" else {}
            click.echo(json.dumps({**_ask_json(stream.reply), **audio}, ensure_ascii=False))
        elif how == "speech":
            click.echo(wrote or "(nothing to say)")  # the answer is the file
        else:
            click.echo()
            if wrote is not None:
                click.echo(f"Spoken answer: {wrote}", err=True)


def _spoken(bot: Assistant, reply: Reply, output: Path | None) -> Path | None:
    """The answer spoken into ``output`` (default: ``$DIALOOP_HOME/voice/answer-N.wav``)."""
    from dialoop.cli.voice import speak_answer

    path = output or bot.settings.home / "voice" / f"answer-{reply.turn_id}.wav"
    return speak_answer(reply.text, path)


def _read_batch(lines: TextIO) -> list[tuple[object, str]]:
    """(id, question) of each non-empty line; the first bad line is an error."""
    items = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"Line {number} of the batch is not JSON: {exc.msg}.") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("question"), str) \
                or not obj["question"].strip():
            raise InvalidInputError(
                f'Line {number} of the batch needs a "question" (text), like '
                '{"id": 1, "question": "…"}.'
            )
        items.append((obj.get("id", number), obj["question"]))
    return items


def _ask_json(reply: Reply) -> dict[str, object]:
    return {
        "answer": reply.text,
        "adapter": reply.adapter,
        "lessons": reply.trace.lessons,
        "session": reply.session,
        "tokens": reply.usage.completion_tokens,
        "seconds": round(reply.usage.seconds, 3),
        "session_id": reply.session_id,
        "turn_id": reply.turn_id,
        "prompt_tokens": reply.usage.prompt_tokens,
        "cached_tokens": reply.usage.cached_tokens,
        "finish_reason": reply.finish_reason,
    }


@contextmanager
def ctrl_c_cancels(bot: Assistant) -> Iterator[None]:
    """While an answer streams, Ctrl-C stops the answer instead of the program."""
    def stop(signum: int, frame: object) -> None:
        bot.cancel()

    try:
        previous = signal.signal(signal.SIGINT, stop)
    except ValueError:  # not the main thread: leave Ctrl-C alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@dataclass(frozen=True)
class SlashCommand:
    run: Callable[[Repl, str], None]  # gets the REPL and the rest of the line
    help: str
    usage: str = ""


class Repl:
    """The read-answer loop of ``dialoop chat``."""

    def __init__(self, bot: Assistant, session: ChatSession, *, agent: bool = False,
                 voice: bool = False, modality: str = "text") -> None:
        self.bot = bot
        self.session = session
        self.agent = agent  # the model may call tools before it answers
        self.voice = voice  # lines may be audio files; an empty line records (a microphone)
        self.modality = modality  # "text", "speech" (a WAV file, played) or "both"
        self.microphone = False
        self.done = False
        self.last_reply: Reply | None = None

    def run(self) -> None:
        if sys.stdin.isatty():
            import readline  # noqa: F401  (line editing and history for input())
        domain = "" if self.bot.domain.is_general else f" · domain {self.bot.domain.name}"
        domain += " · agent" if self.agent else ""
        click.echo(f"dialoop · {self.bot.engine.name} on {self.bot.engine.kind}{domain} · "
                   f"session {self.session.label} · /help for commands, /quit to leave")
        if self.voice:
            self._voice_banner()
        while not self.done:
            try:
                line = input(PROMPT)
            except EOFError:
                click.echo()
                break
            except KeyboardInterrupt:
                click.echo("\n(/quit or Ctrl-D to leave)")
                continue
            try:
                self.handle(line)
            except DialoopError as exc:
                click.secho(f"Error: {exc}", fg="red")

    def _voice_banner(self) -> None:
        from dialoop.cli.voice import has_microphone

        self.microphone = has_microphone()
        if self.microphone:
            click.echo("Voice: press Enter on an empty line and speak (a second of silence "
                       "ends it), or type the path of an audio file.")
        else:
            click.echo("Voice: no microphone was found (arecord with a capture device); "
                       "type the path of an audio file (wav, mp3, ogg, …), or type.")

    def handle(self, line: str) -> None:
        text = line.strip()
        if self.voice and self._heard(text):
            return
        if not text:
            return
        if text.startswith("/"):
            name, _, rest = text[1:].partition(" ")
            command = COMMANDS.get(name.lower())
            if command is None:
                click.echo(f"Unknown command /{name}: /help lists them.")
            else:
                command.run(self, rest.strip())
            return
        self.answer(text)

    def _heard(self, text: str) -> bool:
        """A voice line: an audio file's path, or (with a microphone) an empty line that
        records. Answers what was said; False when the line is a typed message."""
        from dialoop.cli import voice

        if not text and self.microphone:
            click.echo("(listening…)")
            heard = voice.transcript_of(voice.record_until_silence())
        elif (path := voice.audio_file(text)) is not None:
            heard = voice.transcript_of(path)
        else:
            return False
        click.echo(f"(heard: {heard.text})")
        self.answer(heard.text, spoken=heard)
        return True

    def answer(self, text: str, *, spoken: Transcript | None = None) -> None:
        extra = {"agent": True} if self.agent else {}
        stream = self.bot.stream(text, session=self.session, spoken=spoken, **extra)
        with ctrl_c_cancels(self.bot):
            for piece in stream:
                if self.modality != "speech":
                    click.echo(piece, nl=False)
        if self.modality != "speech":
            click.echo()
        self.last_reply = stream.reply
        if stream.reply and self.modality != "text":
            self._say(stream.reply)
        if stream.reply and stream.reply.finish_reason == "cancelled":
            click.secho("(stopped)", dim=True)
        elif stream.reply and stream.reply.finish_reason == "length":
            click.secho("(cut at max_tokens)", dim=True)

    def _say(self, reply: Reply) -> None:
        """The answer spoken into a WAV file, played when it can be; its path printed."""
        from dialoop.cli.voice import play

        path = _spoken(self.bot, reply, None)
        if path is not None:
            click.echo(f"(spoken: {path})")
            play(path)


def _new(repl: Repl, rest: str) -> None:
    repl.session = repl.bot.session(rest or None, user=repl.session.user_id,
                                    system=repl.session.system_prompt)
    click.echo(f"New session {repl.session.label}.")


def _history(repl: Repl, rest: str) -> None:
    turns = repl.bot.parts.sessions.turns(repl.session)
    if not turns:
        click.echo("(no turns yet)")
    for turn in turns:
        who = "you" if turn.role == "user" else "assistant"
        mark = "" if turn.status == "complete" else f" ({turn.status})"
        click.echo(f"[{turn.id}] {who}{mark}: {turn.content}")


def _sessions(repl: Repl, rest: str) -> None:
    for item in repl.bot.parts.sessions.list(repl.session.user_id, limit=20):
        here = " *" if item.session.id == repl.session.id else ""
        click.echo(f"{item.session.label:<20} {item.turns:>4} turns  "
                   f"{item.session.title or ''}{here}")


def _why(repl: Repl, rest: str) -> None:
    from dialoop.cli.dialogue import format_trace, pick_turn

    if rest and not rest.isdigit():
        click.echo("Usage: /why [TURN] (a turn id, as /history shows them)")
        return
    turns = repl.bot.parts.sessions.turns(repl.session)
    answer, asked = pick_turn(turns, int(rest) if rest else None)
    click.echo(format_trace(answer, asked))


def _help(repl: Repl, rest: str) -> None:
    for name, command in COMMANDS.items():
        click.echo(f"  /{name + (' ' + command.usage if command.usage else ''):<22} {command.help}")
    click.echo("  Ctrl-C stops an answer; Ctrl-D leaves.")


def _quit(repl: Repl, rest: str) -> None:
    repl.done = True


# Other modules add their commands here (feedback, facts, traces).
COMMANDS: dict[str, SlashCommand] = {
    "new": SlashCommand(_new, "start a new session", "[NAME]"),
    "history": SlashCommand(_history, "show this session's turns"),
    "sessions": SlashCommand(_sessions, "list your sessions"),
    "why": SlashCommand(_why, "show why the last answer (or turn N) was given", "[TURN]"),
    "help": SlashCommand(_help, "show this help"),
    "quit": SlashCommand(_quit, "leave"),
}
