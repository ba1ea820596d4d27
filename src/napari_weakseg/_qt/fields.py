"""Named fields: layer pickers that take a layer's name, spin boxes over
a setting's accepted range, and values checked against their control
before any is set (one sentence each)."""

from __future__ import annotations

from typing import Any

from magicgui.widgets import CheckBox, ComboBox, FloatSpinBox, SpinBox
from magicgui.widgets.bases import (
    CategoricalWidget,
    RangedWidget,
    ValueWidget,
)

from ..core.base.defaults import BOUNDS
from ..core.base.errors import WeaksegError


class LayerPicker(ComboBox):
    """A layer dropdown that accepts a layer or a layer's name."""

    @property  # type: ignore[override]
    def value(self) -> Any:
        return ComboBox.value.fget(self)

    @value.setter
    def value(self, value: Any) -> None:
        ComboBox.value.fset(self, self.resolve(value))

    def resolve(self, value: Any) -> Any:
        """``value`` as one of the choices: a name becomes its layer."""
        if value is None or value in self.choices:
            return value
        self.reset_choices()  # a layer added since the last refresh
        if value in self.choices:
            return value
        kind = layer_kind(self)
        names = [c.name for c in self.choices if c is not None]
        wanted = (
            value if isinstance(value, str) else getattr(value, "name", "")
        )
        match = [c for c in self.choices if getattr(c, "name", None) == wanted]
        if match and isinstance(value, str):
            return match[0]
        raise WeaksegError(
            f"No {kind} layer named '{wanted}' in the viewer for "
            f"'{self.name}'; "
            + (
                f"its {kind} layers are: {', '.join(names)}."
                if names
                else f"it has no {kind} layer."
            )
        )


def layer_kind(picker: Any) -> str:
    """The kind of layer ``picker`` offers, in a sentence (``image``)."""
    annotation = getattr(picker, "annotation", None)
    name = getattr(annotation, "__name__", None) or str(annotation or "")
    return name.rsplit(".", 1)[-1].strip("'>").lower() or "matching"


def bounded(
    name: str, value: Any, label: str, low: float | None = None, **kw: Any
) -> SpinBox | FloatSpinBox:
    """A spin box for the setting ``name`` over the range the API and the
    CLI accept (:data:`~..core.base.defaults.BOUNDS`); ``low`` widens it
    downwards (0 for "none", where the API takes None)."""
    kind, lowest, highest, _ = BOUNDS[name]
    box = SpinBox if kind is int else FloatSpinBox
    return box(
        value=value,
        min=lowest if low is None else low,
        max=highest,
        label=label,
        **kw,
    )


def as_layer_picker(widget: Any) -> Any:
    """Make a napari layer ComboBox a :class:`LayerPicker` (in place)."""
    if type(widget) is ComboBox:
        widget.__class__ = LayerPicker
    return widget


def same_value(a: Any, b: Any) -> bool:
    """Whether ``a`` is ``b`` or equals it (False where ``==`` fails)."""
    try:
        return a is b or bool(a == b)
    except Exception:  # arrays and the like
        return False


def checked_value(widget: Any, name: str, value: Any, title: str) -> Any:
    """``value`` as ``widget`` takes it, or one sentence saying why not."""
    where = f"'{name}' of the {title} dock"
    if isinstance(widget, LayerPicker):
        value = widget.resolve(value)
        if value is None and None not in widget.choices:
            raise WeaksegError(f"{where} needs a layer.")
        return value
    if isinstance(widget, CheckBox):
        if not isinstance(value, bool):
            raise WeaksegError(f"{where} is True or False, not {value!r}.")
        return value
    if isinstance(widget, RangedWidget):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise WeaksegError(f"{where} is a number, not {value!r}.")
        if not widget.min <= value <= widget.max:
            raise WeaksegError(
                f"{where} must be between {widget.min} and {widget.max}, "
                f"not {value}."
            )
        return value
    if isinstance(widget, CategoricalWidget):
        choices = list(widget.choices)
        many = isinstance(value, list | tuple) and widget._allow_multiple
        bad = [v for v in (value if many else [value]) if v not in choices]
        if bad:
            raise WeaksegError(
                f"{where} must be "
                + ("among" if many else "one of")
                + f" {', '.join(map(str, choices)) or 'nothing yet'}, not "
                f"{bad[0]!r}."
            )
        return value
    if isinstance(widget, ValueWidget) or hasattr(widget, "value"):
        return value
    raise WeaksegError(f"{where} cannot be set.")
