"""A model's ``when`` blocks as solver events: margins and reset maps compiled like the field.

``compiled_events(model, signal)`` gives one :class:`~nodedsl.core.events.Event` per lowered
:class:`~nodedsl.symbolic.events.EventSym`; its callables take ``(t, x [batch, n])`` and read inputs
from ``signal(t, batch)`` (None: the defaults), as :class:`~nodedsl.compiler.module.Driven` does.
``solve`` uses them when the field it integrates has a non-empty ``events`` attribute.

Example:
    >>> import nodedsl, torch
    >>> text = '''model Ball { state h = 1
    ...   state v = -1
    ...   param e = 0.5
    ...   der(h) = v
    ...   der(v) = -9.81
    ...   when h <= 0 and v < 0 { reset v = -e * v } }'''
    >>> model = nodedsl.loads(text).model("Ball")
    >>> ev = compiled_events(model)[0]
    >>> x = torch.tensor([[0.0, -2.0]])
    >>> ev.margins(torch.tensor(0.0), x).tolist(), ev.reset(torch.tensor(0.0), x).tolist()
    ([[-0.0, 2.0]], [[0.0, 1.0]])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..core.events import Event


def compiled_events(model: Any, signal: Callable | None = None, clock: Callable | None = None) -> list[Event]:
    """The events of a :class:`~nodedsl.compiler.module.CompiledModel` with inputs from ``signal``.

    ``clock(t)`` maps the solver's time to the model's (a training window's local time to absolute).
    """
    system = model.system
    out = []

    def inputs(t: Any, x: Any) -> Any:
        return model.default_inputs(x) if signal is None else signal(t, x.shape[0])

    for k, ev in enumerate(getattr(system, "events", [])):
        margins_fn = model._function(f"event {k} margins", ev.margins)
        reset_fn = model._function(f"event {k} reset", [ev.resets.get(s, s) for s in system.states])

        def margins(t: Any, x: Any, fn: Any = margins_fn) -> Any:
            return model._call(fn, t if clock is None else clock(t), x, inputs(t, x))

        def reset(t: Any, x: Any, fn: Any = reset_fn) -> Any:
            return model._call(fn, t if clock is None else clock(t), x, inputs(t, x))

        out.append(Event(margins, ev.condition, reset, name=f"when {ev.text}"))
    return out
