"""Keyboard shortcuts: one table, bound by each dock for its own actions.

Each is a napari action (``napari-weakseg:<method>``, see
:func:`register_actions`), so napari's Preferences > Shortcuts lists it
and can rebind it.  Keys napari already uses (Shift+A, Shift+L, Shift+P,
Shift+V...) are avoided; the README's table and the Annotate dock's
*Shortcuts* button are made from :data:`SHORTCUTS`.
"""

from __future__ import annotations

import weakref
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


#: each viewer's docks that own shortcuts: class name -> weak reference
_DOCKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def action_name(method: str) -> str:
    """The napari action of a shortcut (``napari-weakseg:<method>``)."""
    return f"napari-weakseg:{method}"


def register_actions() -> list[str]:
    """Register every shortcut as a napari action of the viewer (once):
    they are listed, and can be rebound, in napari's Preferences >
    Shortcuts under the viewer's key bindings; a key the user rebound
    there is kept."""
    from napari.components import ViewerModel
    from napari.utils.action_manager import action_manager

    names = []
    for key, owner, method, what in SHORTCUTS:
        name = action_name(method)
        if name not in action_manager._actions:
            action_manager.register_action(
                name, _runner(owner, method), f"WeakSeg: {what}", ViewerModel
            )
            if not action_manager._shortcuts.get(name):
                action_manager.bind_shortcut(name, key)
        names.append(name)
    return names


def _runner(owner: str, method: str) -> Any:
    from napari.components import ViewerModel

    def run(viewer: ViewerModel) -> None:
        ref = _DOCKS.get(viewer, {}).get(owner)
        dock = ref() if ref is not None else None
        if dock is None:
            from napari.utils.notifications import show_info

            from .scripting import TITLES

            show_info(
                f"Open the WeakSeg {TITLES.get(owner, owner)} dock first."
            )
            return
        getattr(dock, method)()

    run.__name__ = method
    return run


def bind_shortcuts(viewer: Any, dock: Any) -> list[str]:
    """Make the shortcuts of ``dock``'s class act on ``dock`` in
    ``viewer`` (see :func:`register_actions`); returns their keys."""
    register_actions()
    owner = type(dock).__name__
    _DOCKS.setdefault(viewer, {})[owner] = weakref.ref(dock)
    return [key for key, o, _, _ in SHORTCUTS if o == owner]


def help_text() -> str:
    """The shortcut table as lines of text (for the help button)."""
    return "\n".join(
        f"{k.replace('-', '+')}: {what}" for k, _, _, what in SHORTCUTS
    )
