"""The library's own error types: what a user can fix, said in one line.

The CLI prints these (and only these, plus the OS's file errors) as one red line; anything else is a
bug and shows its traceback. Each derives from the built-in type code already catches, so
``except ValueError`` still sees an :class:`InputError`.
"""
from __future__ import annotations


class GlassbertError(Exception):
    """Base class: an error whose message tells the user what to change."""


class InputError(GlassbertError, ValueError):
    """Bad input: a value, a shape, a file's content, an option that does not fit."""


class MissingError(GlassbertError, FileNotFoundError):
    """Something that should be there is not: a file, a model directory, a checkpoint, a recording."""


class ExistsError(GlassbertError, FileExistsError):
    """A target that is already there and would be overwritten (pass --overwrite or --resume)."""


__all__ = ["GlassbertError", "InputError", "MissingError", "ExistsError"]
