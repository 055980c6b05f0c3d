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


class NonFiniteLossError(GlassbertError, RuntimeError):
    """Training stopped because the loss became NaN or infinite (the settings to change are named)."""

    def __init__(self, step: int, loss: float, last_finite_loss: float | None) -> None:
        self.step, self.loss, self.last_finite_loss = step, loss, last_finite_loss
        last = "none yet" if last_finite_loss is None else f"{last_finite_loss:.6g}"
        super().__init__(
            f"non-finite loss {loss} at step {step} (last finite loss: {last}); "
            "the optimizer step was skipped and no checkpoint was written for it. "
            "Try a lower lr, warmup, gradient clipping, or precision='fp32' (--precision fp32)."
        )


# The HTTP servers' refusals: `glassbert serve`'s answers other than 200, a path leaving the explorer's root.
class ServeError(GlassbertError):
    """An answer other than 200: its status, TEI's ``error_type`` and a message saying what to change."""

    def __init__(self, status: int, message: str, error_type: str = "validation"):
        super().__init__(message)
        self.status, self.message, self.error_type = status, message, error_type


class PathRefused(InputError):
    """A request path that tries to leave its root (the explorer answers 403)."""


__all__ = ["GlassbertError", "InputError", "MissingError", "ExistsError", "NonFiniteLossError", "ServeError",
           "PathRefused"]
