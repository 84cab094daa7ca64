"""Checks of composition: ports, sub-models with overrides, couplings and connections.

Example:
    >>> from nodedsl.frontend.loader import source_from_text
    >>> from nodedsl.frontend.check import check_source
    >>> text = "model A { state x = 1\\n input u = 0\\n der(x) = u }\\n"
    >>> text += "model B { sub a = A()\\n sub b = A()\\n connect a.x -> b.v }"
    >>> [d.code for d in check_source(source_from_text(text, "m"))[1]]
    ['undefined-name']
"""

from __future__ import annotations

from pathlib import Path

from ..core.diagnostics import Span, suggest
from . import ast
from .check_exprs import ExprChecker
from .model_info import Member, ModelInfo, _names, decl_shape
from .shapes import Shape, constant_value, fmt_shape

_NONE = Member("none", (), None)


class CompositionChecker(ExprChecker):
    """Ports, sub-models, couplings and connections of one model."""

    def check_sub_model(self, file: str, model: ast.Model, used_at: Span) -> ModelInfo | None:
        """Check a sub-model (memoized by the program); None if it is part of a cycle."""
        raise NotImplementedError  # the model checker provides it

    def _port(self, decl: ast.Port) -> None:
        """A port of the states (``G = matrix``) or a stateless one (``y = f(u)``: a resistor, a source).

        The port is registered before its checks, with size 1 when its size is unknown, and marked bad
        when a check fails: a ``couple`` naming it then reports nothing more (no cascade)."""
        n_own = self.n_own
        self._ph_only(decl, "port")
        self.info.ports[decl.name] = 1
        items: dict[str, ast.PortItem] = {}
        for item in decl.items:
            if item.key not in ("G", "y"):
                self.d.error(
                    "unknown-key",
                    f"unknown port key '{item.key}'",
                    item.span,
                    "a port declares G = matrix (a port of the states) or y = expression of u (a stateless port)",
                )
            elif item.key in items:
                self.d.error("duplicate-key", f"port '{decl.name}' gives '{item.key}' twice", item.span)
            else:
                items[item.key] = item
        body_ok = self._port_body(decl, items, n_own)
        if not body_ok or len(items) != len(decl.items):
            self.info.bad_ports.add(decl.name)

    def _port_body(self, decl: ast.Port, items: dict[str, ast.PortItem], n_own: int) -> bool:
        """Check G or y of a port; False when a diagnostic was reported."""
        if "G" in items and "y" in items:
            self.d.error(
                "port-g-and-y",
                f"port '{decl.name}' declares both G and y",
                decl.span,
                "G makes a port of the states (y = G^T grad H); y = f(u) makes a stateless port: keep one",
            )
            return False
        if "y" in items:
            return self._static_port(decl, items["y"])
        if "G" not in items:
            self.d.error(
                "missing-g",
                f"port '{decl.name}' has neither G (a port of the states) nor y (a stateless relation)",
                decl.span,
                "write G = matrix (one row per state), or y = expression of u, e.g. y = r * u for a resistor",
            )
            return False
        g = items["G"]
        if n_own == 0:
            self.d.error(
                "stateless-port-g",
                f"port '{decl.name}' has G but '{self.model.name}' has no states of its own",
                g.span,
                "a model without states declares its port by a relation y = f(u): "
                "y = r * u (a resistor), y = V with `input V` (a source)",
            )
            return False
        shp = self.shape(g.expr, {})
        if shp is None:
            return False
        if len(shp) == 1 and n_own == shp[0]:
            shp = (shp[0], 1)
        if len(shp) != 2 or shp[0] != n_own:
            self.d.error(
                "port-size-mismatch",
                f"G of port '{decl.name}' must have one row per state ({n_own}), got {fmt_shape(shp)}",
                g.span,
            )
            return False
        self.info.ports[decl.name] = shp[1]
        return True

    def _static_port(self, decl: ast.Port, y: ast.PortItem) -> bool:
        """``y = f(u)``: a scalar expression of the port's input ``u``, parameters, nets, inputs and t,
        never of a state (the port would not be stateless)."""
        states = sorted(n for n in _names(y.expr) if n != "u" and self.info.members.get(n, _NONE).kind == "state")
        if states:
            self.d.error(
                "stateful-relation",
                f"the relation y of port '{decl.name}' uses state '{states[0]}'",
                y.span,
                "a stateless port's output depends on its input u only (and parameters, nets, inputs, t); "
                "a port of the states declares G",
            )
            return False
        shp = self.shape(y.expr, {"u": Member("var", (), decl)})
        if shp is None:
            return False
        if shp != ():
            self.d.error(
                "port-size-mismatch",
                f"the relation y of port '{decl.name}' must be a scalar, got {fmt_shape(shp)}",
                y.span,
                "stateless ports have size 1",
            )
            return False
        return True

    def _sub(self, decl: ast.Sub) -> None:
        target = self.prog.source.scopes.get(self.file, {}).get(decl.model.dotted)
        if target is None or not isinstance(target[1], ast.Model):
            models = [n for n, (_, v) in self.prog.source.scopes.get(self.file, {}).items() if isinstance(v, ast.Model)]
            self.d.error(
                "undefined-model",
                f"unknown model '{decl.model.dotted}'",
                decl.model.span,
                suggest(decl.model.dotted, models),
            )
            return
        sinfo = self.check_sub_model(target[0], target[1], decl.model.span)
        if sinfo is None:
            return
        self.info.subs[decl.name] = sinfo
        if decl.weights is not None:
            self._weights_path(decl)
        for ov in decl.overrides:
            member = sinfo.members.get(ov.name)
            if member is None or member.kind not in ("param", "state", "input"):
                self.d.error(
                    "unknown-override",
                    f"'{sinfo.name}' has no parameter or state '{ov.name}'",
                    ov.span,
                    suggest(ov.name, [n for n, mm in sinfo.members.items() if mm.kind in ("param", "state")]),
                )
                continue
            self.constant(ov.expr, f"the override of '{ov.name}'")
            self.expect(ov.expr, member.shape, f"'{ov.name}'", allow_scalar=True)

    def _weights_path(self, decl: ast.Sub) -> None:
        """A warning (the run may simply not be trained yet) when ``weights "path"`` names nothing:
        the path is relative to the folder of the file that declares the sub-model."""
        here = Path(self.file)
        if not here.is_file() or decl.weights is None:
            return  # source text without a file: nothing to resolve against
        target = here.parent / decl.weights
        if target.is_file() or (target / "model.pt").is_file() or (target / "checkpoint.pt").is_file():
            return
        self.d.warn(
            "missing-weights",
            f"weights '{decl.weights}' of sub-model '{decl.name}': no checkpoint at '{target.resolve()}'",
            decl.span,
            f"weights paths are relative to the folder of {here.name} ({here.parent.resolve()}), "
            "not to the working directory; train the sub-model there first",
        )

    def _port_ref(self, ref: ast.Name) -> tuple[str, int] | None:
        if len(ref.parts) >= 2 and ref.parts[0] in self.info.subs:
            sinfo = self.info.subs[ref.parts[0]]
            rest = ".".join(ref.parts[1:])  # nested composites expose uncoupled ports as 'sub.port'
            if rest in sinfo.free_ports:
                return ref.dotted, sinfo.free_ports[rest]
            self.d.error(
                "undefined-port",
                f"'{sinfo.name}' has no port '{rest}'",
                ref.span,
                suggest(rest, list(sinfo.free_ports)),
            )
            return None
        if len(ref.parts) == 1 and ref.parts[0] in self.info.ports:
            return ref.dotted, self.info.ports[ref.parts[0]]
        self.d.error(
            "undefined-port",
            f"unknown port '{ref.dotted}'",
            ref.span,
            "ports are named sub.port" if len(ref.parts) == 1 else "",
        )
        return None

    def _couple(self, decl: ast.Couple) -> None:
        self._ph_only(decl, "couple")
        total, seen = 0, set()
        ok = True
        for ref in decl.ports:
            got = self._port_ref(ref)
            if got is None:
                ok = False
                continue
            if self._bad_port(got[0]):
                ok = False
            if got[0] in seen:
                self.d.error("duplicate-port", f"port '{got[0]}' is coupled twice", ref.span)
            seen.add(got[0])
            total += got[1]
        if decl.learn is not None:
            if decl.learn != "skew":
                self.d.error(
                    "unknown-learn-kind",
                    f"a learned coupling must be 'learn skew', got 'learn {decl.learn}'",
                    decl.span,
                )
        elif ok and decl.matrix is not None:
            self.expect(decl.matrix, (total, total), f"{decl.matrix_name} (port sizes add up to {total})")
            value = constant_value(decl.matrix)
            if (
                isinstance(value, list)
                and all(isinstance(r, list) and len(r) == total for r in value)
                and len(value) == total
            ):
                bad = [(i, j) for i in range(total) for j in range(total) if abs(value[i][j] + value[j][i]) > 1e-12]
                if bad:
                    i, j = bad[0]
                    self.d.error(
                        "not-skew",
                        f"{decl.matrix_name} must be skew-symmetric so the coupling conserves "
                        f"power: entry [{i},{j}] = {value[i][j]:g} but [{j},{i}] = {value[j][i]:g}",
                        decl.matrix.span,
                    )
        self._coupled.update(seen)

    def _bad_port(self, name: str) -> bool:
        """Whether an own (``p``) or sub-model (``sub.p``) port's declaration had errors (already
        reported). A lookup, not a set of every sub-model's ports: a chain has a thousand of them."""
        sub, _, port = name.partition(".")
        sinfo = self.info.subs.get(sub) if port else None
        return port in sinfo.bad_ports if sinfo is not None else name in self.info.bad_ports

    def _connect(self, decl: ast.Connect) -> None:
        src = self.shape(decl.source, {})
        tgt = decl.target
        if len(tgt.parts) != 2 or tgt.parts[0] not in self.info.subs:
            self.d.error(
                "bad-connect",
                f"the target of connect must be an input of a sub-model (sub.input), got '{tgt.dotted}'",
                tgt.span,
            )
            return
        sinfo = self.info.subs[tgt.parts[0]]
        inputs = dict(sinfo.inputs)
        if tgt.parts[1] not in inputs:
            self.d.error(
                "undefined-name",
                f"'{sinfo.name}' has no input '{tgt.parts[1]}'",
                tgt.span,
                suggest(tgt.parts[1], list(inputs)),
            )
            return
        if tgt.dotted in self.info.driven:
            self.d.error("double-connect", f"input '{tgt.dotted}' is driven twice", tgt.span)
        self.info.driven.add(tgt.dotted)
        want = inputs[tgt.parts[1]]
        if src is not None and src != want and src != ():
            self.d.error(
                "size-mismatch",
                f"connect: '{decl.source.dotted}' is {fmt_shape(src)} but '{tgt.dotted}' is {fmt_shape(want)}",
                decl.span,
            )

    def _flatten(self, own_states: list[tuple[str, Shape]]) -> None:
        info = self.info
        info.states = list(own_states)
        info.inputs = [(d.name, decl_shape(d.size)) for d in self.model.decls(ast.Input)]
        info.outputs = [
            (d.name, info.members[d.name].shape) for d in self.model.decls(ast.Output) if d.name in info.members
        ]
        info.free_ports = dict(info.ports)
        for sub, sinfo in info.subs.items():
            info.states += [(f"{sub}.{n}", s) for n, s in sinfo.states]
            info.inputs += [(f"{sub}.{n}", s) for n, s in sinfo.inputs if f"{sub}.{n}" not in info.driven]
            for port, size in sinfo.free_ports.items():
                if f"{sub}.{port}" not in self._coupled:
                    info.free_ports[f"{sub}.{port}"] = size
                    if port in sinfo.bad_ports:
                        info.bad_ports.add(f"{sub}.{port}")
