"""The `glassbert` group and the options several commands share: click plumbing only.

The library does the work (every command parses, calls one library function, prints); here are the group
that turns a user's error into one red line, and the spelling of the shared options.
"""
from __future__ import annotations

import contextlib
import logging
import re
import sys
from pathlib import Path

import click

from ..embed import POOLING_ALIASES, POOLINGS
from ..errors import GlassbertError, InputError
from ..precision import PRECISIONS, TRAINING_PRECISIONS

CONTEXT = dict(help_option_names=["-h", "--help"], max_content_width=100)


def examples(*lines: str) -> str:
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)


# What a user can fix: the library's own errors and the OS's word on a file. Anything else is a bug
# and keeps its traceback.
USER_ERRORS = (GlassbertError, FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError,
               PermissionError)


class _Group(click.Group):
    """Turns our clear errors (bad paths, bad input) into one red line instead of a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except USER_ERRORS as e:
            if logging.getLogger("glassbert").isEnabledFor(logging.DEBUG):
                raise
            raise click.ClickException(str(e)) from None

    def resolve_command(self, ctx, args):
        """An unknown command that is one of a subgroup's (`glassbert fetch`) names the whole command."""
        name = args[0] if args else None
        if name and self.get_command(ctx, name) is None:
            homes = [group for group, command in sorted(self.commands.items())
                     if isinstance(command, click.Group) and name in command.commands]
            if homes:
                ctx.fail(f"No such command '{name}': did you mean "
                         + " or ".join(f"'{ctx.command_path} {group} {name}'" for group in homes) + "?")
        return super().resolve_command(ctx, args)


@click.group(cls=_Group, context_settings=CONTEXT)
@click.option("-v", "--verbose", is_flag=True, help="Log more (and show tracebacks).")
@click.version_option(package_name="glassbert")
def main(verbose: bool) -> None:
    """glassbert: BERT from scratch, as a glass box: pretrain, fine-tune, embed, trace, explore."""
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("glassbert").setLevel(logging.DEBUG if verbose else logging.WARNING)


@contextlib.contextmanager
def bad_parameter(param_hint: str):
    """A library InputError about one option's value, as click's usage error on that option (exit status 2)."""
    try:
        yield
    except InputError as e:
        raise click.BadParameter(str(e), param_hint=param_hint) from None


@contextlib.contextmanager
def stopped_says_how_to_resume(out: str | Path, how: str):
    """Ctrl-C in a training command: one line on whether and how the run continues (exit status 130), not
    click's bare "Aborted!"."""
    try:
        yield
    except KeyboardInterrupt:
        from ..train.distributed import DistInfo
        from ..train.checkpoints import find_checkpoint
        if DistInfo.from_env().rank != 0:  # under torchrun the first process says it for all
            sys.exit(130)
        if find_checkpoint(out) is not None:
            click.echo(f"\nstopped: {how} continues {out} from its last checkpoint", err=True)
        else:
            click.echo(f"\nstopped before {out} had a checkpoint: {how} starts it again from step 0", err=True)
        sys.exit(130)


POSITIVE = click.FloatRange(min=0, min_open=True)


# ─── the option vocabulary: one spelling per meaning ─────────────────────────────────────────
# Every option that more than one command takes is declared here, once, with its meaning; a command takes it
# with ``@opt.NAME(...)`` (its own help or default where it needs one). docs/options.md is option_table()'s
# output, and tests/test_cli_options.py fails when a meaning is spelled two ways or a name means two things.
class Option(click.Option):
    """A click option with a ``meaning`` (its line in docs/options.md) and hidden ``aliases``: old spellings
    that still parse, for one release, but that --help and error messages do not show (the table lists them).
    A hidden option that stands for an old spelling of another names it in ``alias_of``; ``old`` describes an
    old form the table cannot read from the declaration (explore's ``--pair`` given alone)."""

    def __init__(self, param_decls, *, meaning: str | None = None, aliases: tuple[str, ...] = (),
                 alias_of: str | None = None, old: tuple[str, ...] = (), **kwargs):
        super().__init__(list(param_decls) + list(aliases), **kwargs)
        self.meaning = meaning
        self.aliases = tuple(aliases)
        self.alias_of = alias_of
        self.old = tuple(old)

    @property
    def shown_opts(self) -> list[str]:
        return [o for o in self.opts if o not in self.aliases]

    def get_help_record(self, ctx):
        opts, self.opts = self.opts, self.shown_opts
        try:
            return super().get_help_record(ctx)
        finally:
            self.opts = opts

    def get_error_hint(self, ctx) -> str:
        return " / ".join(f"'{o}'" for o in self.shown_opts)


class AliasChoice(click.Choice):
    """A choice that also takes old names of its values (``aliases``: old → new), hidden from --help."""

    def __init__(self, choices, aliases: dict[str, str] | None = None, case_sensitive: bool = True):
        super().__init__(choices, case_sensitive)
        self.aliases = dict(aliases or {})

    def convert(self, value, param, ctx):
        return super().convert(self.aliases.get(value, value), param, ctx)


def vocabulary(*decls: str, meaning: str, **defaults):
    """The decorator of one meaning: ``opt.NAME(help=..., **overrides)`` (or bare ``@opt.NAME``) adds the
    option to a command, spelled ``decls``, with its meaning; a command's ``help`` says what it is there, and
    ``opt.NAME("param_name", ...)`` passes it to the command under another Python name."""
    def option(*name: str, help: str | None = None, **kwargs):
        if name and callable(name[0]):  # used bare: @opt.NAME
            return option()(name[0])
        settings = {**defaults, **kwargs}
        if help is not None:
            settings["help"] = help
        spelled = decls[:1] + name if name else decls  # a command's own parameter name (the spelling stays)
        return click.option(*spelled, cls=Option, meaning=meaning, **settings)
    option.meaning = meaning
    return option


PATH_OUT = dict(metavar="PATH")
out = vocabulary("--out", meaning="Where the command writes its output: a file or a folder, as its help says.",
                 **PATH_OUT)
overwrite = vocabulary("--overwrite", is_flag=True, meaning="Replace an output that exists (else it is refused).",
                       help="Replace the output if it exists (else it is refused).")
resume = vocabulary("--resume", meaning="Continue a stopped (or finished) run from its last checkpoint.",
                    is_flag=False, flag_value="", default=None, metavar="[DIR]",
                    help="Continue the run in DIR (or, given alone, in --out) from its last checkpoint.")
input_file = vocabulary("--input", "input_file", meaning="Read the inputs from a file.",
                        type=click.Path(exists=True, dir_okay=False),
                        help="A text file (one text per line) or a CSV/TSV/JSONL file (--text-column).")
text_column = vocabulary("--text-column", meaning="The CSV/TSV column (or JSONL field) that holds the text.",
                         default="text", show_default=True, help="The column (CSV/TSV) or field (JSONL) of the text.")
text_pair_column = vocabulary("--text-pair-column", default=None,
                              meaning="The column (or JSONL field) that holds each text's second segment.",
                              help="The column (or field) of each text's second segment: sentence pairs.")
pair = vocabulary("--pair", "pairs", multiple=True, meaning="The second text of a sentence pair.",
                  help="The second text of a pair: once for every text, or once per text.")
max_length = vocabulary("--max-length", type=click.IntRange(3), default=None,
                        meaning="Tokens per input, [CLS] and [SEP] included: longer inputs are truncated.",
                        help="Tokens per input: longer ones are truncated (default: the model's limit).")
pooling = vocabulary("--pooling", meaning="How token vectors become one vector: mean, [CLS] or the pooler.",
                     type=AliasChoice(POOLINGS, POOLING_ALIASES), default="mean", show_default=True,
                     help="How token vectors become one sentence vector: their mean, [CLS]'s, or the pooler's "
                          "(tanh(dense([CLS]))).")
normalize = vocabulary("--normalize/--no-normalize", meaning="Unit-length vectors.", default=True, show_default=True,
                       help="Unit-length vectors.")
batch_size = vocabulary("--batch-size", type=click.IntRange(1), meaning="Inputs run through the model at once.",
                        show_default=True, help="Inputs run through the model at once.")
top_k = vocabulary("--top-k", type=click.IntRange(1), meaning="How many candidates to give, best first.",
                   help="How many candidates to give, best first.")
seed = vocabulary("--seed", type=int, default=0, show_default=True,
                  meaning="The seed of everything random: the same seed gives the same result.",
                  help="The seed of everything random: the same seed gives the same result.")
arch = vocabulary("--arch", meaning="The architecture: BERT, or ALBERT (factorized embeddings, shared layers).",
                  default="bert", show_default=True)
corpus = vocabulary("--corpus", type=click.Path(exists=True), meaning="The text to learn from: a file or a folder.",
                    help="A text file or a folder of them (txt, jsonl, csv).")
task = vocabulary("--task", meaning="What the model is trained to do.")
steps = vocabulary("--steps", type=click.IntRange(1), meaning="Stop training after this many optimizer steps.",
                   help="Stop after this many optimizer steps.")
epochs = vocabulary("--epochs", type=click.IntRange(1), meaning="Stop training after this many passes over the data.",
                    help="Stop after this many passes over the data.")
MINUTES_HELP = ("Stop after this much training time, summed over resumes (evaluations and recording during "
                "training count in it). Reading and tokenizing the data before the first step, and the final "
                "evaluation and save after the last, come on top: allow a minute or two more of wall time.")
minutes = vocabulary("--minutes", type=POSITIVE, help=MINUTES_HELP,
                     meaning="Stop training after this much training time (setup and the final save come on top).")
lr = vocabulary("--lr", type=POSITIVE, meaning="The peak learning rate.", help="The peak learning rate.")
save_every = vocabulary("--save-every", type=click.IntRange(1),
                        meaning="Optimizer steps between checkpoints (what --resume continues from).")
log_every = vocabulary("--log-every", type=click.IntRange(1), meaning="Optimizer steps between lines of metrics.jsonl.",
                       help="Optimizer steps between lines of metrics.jsonl.")
max_mb = vocabulary("--max-mb", type=POSITIVE, default=None, metavar="MB",
                    meaning="The size bound of the file the command writes, in MB (10^6 bytes): what does not fit "
                            "is left out, and said.")
record = vocabulary("--record", default=None, meaning="What to record for the explorer (the --record grammar).")
host = vocabulary("--host", default="127.0.0.1", show_default=True, meaning="The address to bind.",
                  help="Address to bind (127.0.0.1 = this machine only).")
port = vocabulary("--port", type=click.IntRange(0, 65535), show_default=True, meaning="The port to listen on.",
                  help="The port to listen on (0 picks a free one).")


def precision(default: str | None, training: bool = False, note: str = "", int8: bool | None = None):
    """``--precision fp32|bf16|auto`` (glassbert.precision), and ``int8`` where the model is only applied
    (``int8``: default, unless ``training``): training defaults to auto, inference to fp32."""
    int8 = not training if int8 is None else int8
    what = ("Train in fp32, or under bf16 autocast (weights and optimizer stay fp32; saved weights are fp32); "
            "auto: bf16 where the hardware has fast bf16 (CUDA, a CPU with AMX or AVX512-BF16), else fp32."
            if training else
            "Run the model in fp32, or in bf16 (its weights cast once, under bf16 autocast: faster on CPUs with "
            "AMX or AVX512-BF16 and on GPUs; docs/precision.md says what it changes); auto: bf16 where the "
            "hardware has fast bf16, else fp32" + ("; int8: its linear layers dynamically quantized (CPU)." if int8
                                                   else "."))
    if default is None:
        what += " Default: auto (with --resume: the precision the run was started with)."
    return click.option("--precision", cls=Option, meaning="Run the model in fp32, bf16 (or, applying it, int8).",
                        type=click.Choice(PRECISIONS if int8 else TRAINING_PRECISIONS), default=default,
                        show_default=default is not None, help=what + note)


# A command that computes passes --threads to its library function (threads=), which chooses for the model it
# runs (glassbert.threads) as it does when called from Python: one way to apply it.
threads = vocabulary("--threads", meaning="CPU threads for tensor operations.", type=click.IntRange(1), default=None,
                     help="CPU threads for tensor operations (default: chosen for the model and for what else runs "
                          "on this machine; GLASSBERT_THREADS sets it too).")


# ─── the table of docs/options.md, read from the commands themselves ────────────────────────
def _commands(group: click.Group, prefix: str = ""):
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from _commands(command, f"{prefix}{name} ")
        else:
            yield f"{prefix}{name}", command


def _meaning(param: click.Option) -> str:
    """A shared option's declared meaning; a command's own option: the first sentence of its help."""
    meaning = getattr(param, "meaning", None)
    if meaning:
        return meaning
    help_text = " ".join((param.help or "").split())
    head = re.split(r"(?<!e\.g)\. ", help_text)[0].rstrip(".")
    return head + "." if head else ""


def options_in_use(group: click.Group | None = None) -> dict[str, dict]:
    """Each shown option name of every command of ``group`` (default: glassbert's): its meanings (one,
    unless two commands disagree), the commands that take it, its hidden old spellings and whether it is
    declared in this module's vocabulary."""
    table: dict[str, dict] = {}
    old_spellings: list[tuple[str, str, str]] = []  # (path, the option it stands for, the old spelling)
    for path, command in _commands(group or main):
        for param in command.params:
            if getattr(param, "alias_of", None):
                old_spellings.append((path, param.alias_of, max(param.opts, key=len)))
            if not isinstance(param, click.Option) or param.hidden or param.name == "help":
                continue
            shown = getattr(param, "shown_opts", param.opts) + list(param.secondary_opts)
            name = max(getattr(param, "shown_opts", param.opts), key=len)
            row = table.setdefault(name, {"spellings": set(), "meanings": set(), "commands": [], "aliases": {},
                                          "shared": True})
            row["spellings"].update(shown)
            row["meanings"].add(_meaning(param))
            row["commands"].append(path)
            for old in (*getattr(param, "aliases", ()), *getattr(param, "old", ()),
                        *(f"{name} {value}" for value in getattr(param.type, "aliases", {}))):
                row["aliases"].setdefault(old, []).append(path)
            row["shared"] &= getattr(param, "meaning", None) is not None
    for path, name, spelling in old_spellings:
        table[name]["aliases"].setdefault(spelling, []).append(path)
    return table


def vocabulary_problems(group: click.Group | None = None) -> list[str]:
    """What breaks "one spelling per meaning": a name that means two things in two commands, a meaning
    spelled two ways, an option two commands take that is not declared once in the vocabulary here."""
    table = options_in_use(group)
    problems = []
    spelled: dict[str, list[str]] = {}
    for name, row in table.items():
        if len(row["meanings"]) > 1:
            problems.append(f"{name} means {len(row['meanings'])} things: " + " | ".join(sorted(row["meanings"])))
        if len(row["commands"]) > 1 and not row["shared"]:
            problems.append(f"{name} is declared in several commands ({', '.join(row['commands'])}): declare it "
                            "once in glassbert.cli.base and use that decorator")
        for meaning in row["meanings"]:
            spelled.setdefault(meaning, []).append(name)
    for meaning, names in spelled.items():
        if len(names) > 1:
            problems.append(f"one meaning, {len(names)} spellings ({', '.join(sorted(names))}): {meaning}")
    return problems


def option_table(group: click.Group | None = None) -> str:
    """docs/options.md's table: each option once, its meaning, the commands that take it, old spellings."""
    lines = ["| Option | Meaning | Commands | Old spelling (hidden, accepted for one release) |",
             "|---|---|---|---|"]
    for name, row in sorted(options_in_use(group).items(), key=lambda item: item[0].lstrip("-").lower()):
        spellings = " / ".join(f"`{s}`" for s in sorted(row["spellings"], key=lambda s: (s != name, s)))
        meaning = " / ".join(sorted(row["meanings"])).replace("|", "\\|")
        aliases = ", ".join(f"`{old}` ({', '.join(sorted(paths))})" for old, paths in sorted(row["aliases"].items()))
        lines.append(f"| {spellings} | {meaning} | {', '.join(row['commands'])} | {aliases} |")
    return "\n".join(lines) + "\n"


TABLE_START, TABLE_END = "<!-- option table: generated by glassbert.cli.base.option_table() -->", "<!-- end of table -->"


def with_option_table(doc: str, group: click.Group | None = None) -> str:
    """``doc`` (docs/options.md's text) with the table between its markers replaced by :func:`option_table`'s:
    ``python -c "from glassbert.cli.base import write_option_table; write_option_table()"`` rewrites the file."""
    head, _, rest = doc.partition(TABLE_START)
    _, _, tail = rest.partition(TABLE_END)
    return f"{head}{TABLE_START}\n{option_table(group)}{TABLE_END}{tail}"


def write_option_table(path: str | Path = "docs/options.md") -> None:
    path = Path(path)
    path.write_text(with_option_table(path.read_text(encoding="utf-8")), encoding="utf-8")
