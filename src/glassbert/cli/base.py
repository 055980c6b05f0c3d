"""The `glassbert` group and the options several commands share: click plumbing only.

The library does the work (every command parses, calls one library function, prints); here are the group
that turns a user's error into one red line, and the spelling of the shared options.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import sys
from pathlib import Path

import click

from ..embed import POOLINGS
from ..errors import GlassbertError, InputError
from ..precision import PRECISIONS

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
overwrite = click.option("--overwrite", is_flag=True, help="Replace the output if it exists (else it is refused).")
pooling = click.option("--pooling", type=click.Choice(POOLINGS), default="mean",
                       show_default=True, help="How token vectors become one sentence vector.")


def precision(default: str | None, training: bool = False):
    """``--precision fp32|bf16|auto`` (glassbert.precision): training defaults to auto, inference to fp32."""
    what = ("Train in fp32, or under bf16 autocast (weights and optimizer stay fp32; saved weights are fp32); "
            "auto: bf16 where the hardware has fast bf16 (CUDA, a CPU with AMX), else fp32."
            if training else
            "Run the model in fp32, or under bf16 autocast (faster on CPUs with AMX and on GPUs; the README says "
            "what it changes); auto: bf16 where the hardware has fast bf16, else fp32.")
    if default is None:
        what += " Default: auto (with --resume: the precision the run was started with)."
    return click.option("--precision", type=click.Choice(PRECISIONS), default=default,
                        show_default=default is not None, help=what)


def threads(library_sets: bool = False):
    """``--threads N`` on a command that computes. With ``library_sets`` the command passes it to its library
    function (``threads=``), which chooses for the model it loads; else it is applied here, before the work,
    for the model the command's MODEL (or TARGET) argument names: glassbert.threads.set_threads_for."""
    option = click.option("--threads", type=click.IntRange(1), default=None,
                          help="CPU threads for tensor operations (default: chosen for the model and for "
                               "what else runs on this machine; GLASSBERT_THREADS sets it too).")

    def decorate(fn):
        if library_sets:
            return option(fn)

        @functools.wraps(fn)
        def wrapper(*args, threads=None, **kwargs):
            from ..threads import set_threads_for
            set_threads_for(threads, kwargs.get("model") or kwargs.get("target"))
            return fn(*args, **kwargs)
        return option(wrapper)
    return decorate
