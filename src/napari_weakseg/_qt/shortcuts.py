"""Keyboard shortcuts: one table, bound by each dock for its own actions.

Keys napari already uses (Shift+A, Shift+L, Shift+P, Shift+V...) are
avoided; the README's table and the Annotate dock's *Shortcuts* button are
made from :data:`SHORTCUTS`.
"""

from __future__ import annotations

from typing import Any

#: (key, dock class, method, what it does)
SHORTCUTS = (
    (
        "Shift-N",
        "AnnotationWidget",
        "go_to_suggestion",
        "go to the next suggested slice",
    ),
    (
        "Shift-D",
        "AnnotationWidget",
        "mark_current_slice_done",
        "mark the shown slice done (Ctrl+Z undoes it)",
    ),
    (
        "Shift-B",
        "AnnotationWidget",
        "use_background_brush",
        "paint with the background brush",
    ),
    (
        "Shift-T",
        "TrainWidget",
        "toggle_training",
        "start training, or stop it",
    ),
    ("Shift-R", "ApplyWidget", "start_apply", "apply the model (predict)"),
    (
        "Shift-K",
        "ApplyWidget",
        "accept_current_slice",
        "keep the shown slice of the prediction as annotation",
    ),
)


def bind_shortcuts(viewer: Any, dock: Any) -> list[str]:
    """Bind the keys of ``dock``'s class on ``viewer``; returns them."""
    bound = []
    for key, owner, method, _ in SHORTCUTS:
        if type(dock).__name__ != owner:
            continue
        action = getattr(dock, method)
        viewer.bind_key(key, lambda _v, a=action: a() and None, overwrite=True)
        bound.append(key)
    return bound


def help_text() -> str:
    """The shortcut table as lines of text (for the help button)."""
    return "\n".join(
        f"{k.replace('-', '+')}: {what}" for k, _, _, what in SHORTCUTS
    )
