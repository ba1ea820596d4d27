"""*Copy as script*: a dock's settings as Python (``api`` calls) or a
``weakseg`` command, to the clipboard or a file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from magicgui.widgets import PushButton

from ..core.base.errors import WeaksegError
from .script_calls import CALLS, Call
from .session import home
from .workers import report_error


class CopyScript:
    """*Copy as script*: the dock's settings as Python or a command."""

    def script_call(self) -> Call:
        build = CALLS.get(type(self).__name__)
        if build is None:
            raise WeaksegError(
                f"The {self.title} dock has no job a script could run."  # type: ignore[attr-defined]
            )
        return build(self)

    def as_script(
        self, kind: str = "python", out: str | Path | None = None
    ) -> str:
        """The equivalent of the dock's settings: ``kind`` ``"python"``
        (``api`` calls) or ``"cli"`` (a ``weakseg`` command); layers with
        no file on disk are saved beside the output and named in it.
        With ``out`` the script is written to that file too."""
        if kind not in ("python", "cli"):
            raise WeaksegError(f"A script is 'python' or 'cli', not {kind!r}.")
        call = self.script_call()
        title = self.title  # type: ignore[attr-defined]
        text = call.python(title) if kind == "python" else call.shell(title)
        if out is not None:
            import os

            from ..core.base.files import discard, temporary_sibling

            target = Path(out)
            tmp = temporary_sibling(target)
            try:
                tmp.write_text(text)
                os.replace(tmp, target)
            finally:
                discard(tmp)
        return text

    def copy_script(self, kind: str = "python") -> str:
        """Put :meth:`as_script` on the clipboard (and return it)."""
        from qtpy.QtWidgets import QApplication

        text = self.as_script(kind)
        QApplication.clipboard().setText(text)
        return text

    def _script_menu(self) -> Any:
        """A *Copy as script* button with its menu (Python, command, to
        a file), or None for a dock with no script."""
        if type(self).__name__ not in CALLS:
            return None
        button = PushButton(text="Copy as script")
        button.name = "copy_script_button"
        button.gui_only = True
        button.label = ""
        button.tooltip = (
            "The dock's settings as a Python script (api calls) or a "
            "weakseg command, to the clipboard or a file."
        )
        from qtpy.QtWidgets import QMenu

        menu = QMenu(button.native)
        actions = (
            ("Python to clipboard", lambda: self._copy("python")),
            ("weakseg command to clipboard", lambda: self._copy("cli")),
            ("Save as Python file…", lambda: self._save("python")),
            ("Save as shell file…", lambda: self._save("cli")),
        )
        for text, slot in actions:
            menu.addAction(text).triggered.connect(slot)
        button.native.setMenu(menu)
        self._script_actions = menu
        return button

    def _copy(self, kind: str) -> None:
        from napari.utils.notifications import show_info

        try:
            self.copy_script(kind)
        except WeaksegError as exc:
            report_error(exc)
            return
        show_info("Copied the script to the clipboard.")

    def _save(self, kind: str) -> None:
        from qtpy.QtWidgets import QFileDialog

        suffix = ".py" if kind == "python" else ".sh"
        chosen, _ = QFileDialog.getSaveFileName(
            self.native,  # type: ignore[attr-defined]
            "Save the script",
            str(home() / f"{self.title.lower()}{suffix}"),  # type: ignore[attr-defined]
        )
        if chosen:
            try:
                self.as_script(kind, chosen)
            except WeaksegError as exc:
                report_error(exc)
