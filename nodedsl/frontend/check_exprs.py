"""Shapes of expressions: names, builtins, operators and constants, each problem a diagnostic.

:class:`ExprChecker` holds one model's checking state; the declaration checks
(:mod:`nodedsl.frontend.check_links`, :mod:`nodedsl.frontend.check`) build on it.

Example:
    >>> from nodedsl.frontend.loader import source_from_text
    >>> from nodedsl.frontend.check import check_source
    >>> _, diags = check_source(source_from_text("model M { state x[2] = 1\\n der(x) = [1, 2, 3] }", "m"))
    >>> [d.code for d in diags]
    ['size-mismatch']
"""

from __future__ import annotations

from typing import Any

from ..core.diagnostics import Collector, Span, suggest
from . import ast
from .check_events import index_shape, slice_shape
from .model_info import PH, CheckedProgram, Member, ModelInfo
from .shapes import BUILTINS, CONSTANTS, Shape, constant_value, fmt_shape


class ExprChecker:
    """One model's checking state, and the shape rules of expressions."""

    def __init__(self, prog: CheckedProgram, diags: Collector, file: str, model: ast.Model, stack: list):
        self.prog, self.d, self.file, self.model, self.stack = prog, diags, file, model, stack
        self.info = ModelInfo(file, model)
        self.defined_lets: set[str] = set()
        self._coupled: set[str] = set()  # 'sub.port' names listed in a couple
        self.ders: dict[str, ast.Der] = {}  # state -> its der(...) equation
        self.n_own = 0  # number of the model's own state components

    # ------------------------------------------------------------ expressions
    def shape(self, e: ast.Expr, scope: dict[str, Member]) -> Shape | None:
        """Size of an expression; None when a diagnostic was already reported for it."""
        if isinstance(e, ast.Num):
            return ()
        if isinstance(e, ast.Name):
            return self._name_shape(e, scope)
        if isinstance(e, ast.Neg):
            return self.shape(e.operand, scope)
        if isinstance(e, ast.BinOp):
            a, b = self.shape(e.left, scope), self.shape(e.right, scope)
            if a is None or b is None:
                return None
            return self._binop(e, a, b)
        if isinstance(e, ast.Array):
            maybe = [self.shape(i, scope) for i in e.items]
            shapes = [s for s in maybe if s is not None]
            if len(shapes) < len(maybe):
                return None
            if all(s == () for s in shapes):
                return (len(shapes),)
            if all(len(s) == 1 and s == shapes[0] for s in shapes):
                return (len(shapes), shapes[0][0])
            self.d.error(
                "size-mismatch",
                "the rows of a matrix literal must all be vectors of one size, got "
                + ", ".join(fmt_shape(s) for s in shapes),
                e.span,
            )
            return None
        if isinstance(e, ast.Slice):
            target = self.shape(e.target, scope)
            return None if target is None else slice_shape(self, e, target)
        if isinstance(e, ast.Index) and e.col is not None:
            target = self.shape(e.target, scope)
            return None if target is None else index_shape(self, e, target)
        if isinstance(e, ast.Index):
            target = self.shape(e.target, scope)
            if target is None:
                return None
            idx = constant_value(e.index)
            if not isinstance(idx, float) or idx != int(idx):
                self.d.error("bad-index", "an index must be an integer constant", e.index.span)
                return None
            if target == ():
                self.d.error("not-indexable", "a scalar cannot be indexed", e.span)
                return None
            if not 0 <= idx < target[0]:
                self.d.error(
                    "index-out-of-range",
                    f"index {int(idx)} is out of range for {fmt_shape(target)}",
                    e.index.span,
                    f"valid indices are 0 to {target[0] - 1}",
                )
                return None
            return target[1:]
        if isinstance(e, ast.Call):
            return self._call_shape(e, scope)
        self.d.error(
            "unsupported", f"unsupported expression {type(e).__name__}", getattr(e, "span", Span(self.file, 0, 0))
        )
        return None

    def _binop(self, e: ast.BinOp, a: Shape, b: Shape) -> Shape | None:
        if e.op == "@":
            if len(a) == 2 and len(b) == 2 and a[1] == b[0]:
                return (a[0], b[1])
            if len(a) == 2 and len(b) == 1 and a[1] == b[0]:
                return (a[0],)
            if len(a) == 1 and len(b) == 2 and a[0] == b[0]:
                return (b[1],)
            if len(a) == 1 and a == b:
                return ()
            self.d.error(
                "size-mismatch", f"matrix product of {fmt_shape(a)} and {fmt_shape(b)}: inner sizes differ", e.span
            )
            return None
        if e.op == "^" and b != ():
            self.d.error("size-mismatch", f"an exponent must be a scalar, got {fmt_shape(b)}", e.right.span)
            return None
        if a == () or a == b:
            return b
        if b == ():
            return a
        self.d.error(
            "size-mismatch",
            f"'{e.op}' on {fmt_shape(a)} and {fmt_shape(b)}: sizes do not match",
            e.span,
            "arithmetic is element-wise; use '@' for a matrix product",
        )
        return None

    def _lookup(self, name: ast.Name, scope: dict[str, Member]) -> Member | None:
        first = name.parts[0]
        if len(name.parts) == 1:
            if first in scope:
                return scope[first]
            if first in self.info.members:
                member = self.info.members[first]
                if member.kind == "let" and first not in self.defined_lets:
                    self.d.error(
                        "undefined-name",
                        f"'{first}' is used before its definition",
                        name.span,
                        f"defined at {member.decl.span}",
                    )
                    return None
                return member
            return None
        info = self.info
        for _i, part in enumerate(name.parts[:-1]):
            if part not in info.subs:
                return None
            info = info.subs[part]
        leaf = name.parts[-1]
        found = info.members.get(leaf)
        if found is not None and found.kind in ("state", "input", "param", "output", "let"):
            return found
        return None

    def _name_shape(self, name: ast.Name, scope: dict[str, Member]) -> Shape | None:
        if name.parts == ("t",) or (name.parts[0] in CONSTANTS and len(name.parts) == 1):
            return ()
        member = self._lookup(name, scope)
        if member is None:
            if len(name.parts) == 1 and name.parts[0] in self.info.members:
                return None  # used before definition, already reported
            candidates = list(scope) + list(self.info.members) + ["t"]
            for sub, info in self.info.subs.items():
                candidates += [f"{sub}.{m}" for m in info.members]
            self.d.error("undefined-name", f"unknown name '{name.dotted}'", name.span, suggest(name.dotted, candidates))
            return None
        if member.kind == "net":
            self.d.error(
                "net-not-called",
                f"net '{name.dotted}' must be called with arguments",
                name.span,
                f"write {name.dotted}(...)",
            )
            return None
        if member.kind in ("port", "sub", "coupling"):
            self.d.error("not-a-value", f"'{name.dotted}' is a {member.kind}, not a value", name.span)
            return None
        return member.shape

    def _call_shape(self, e: ast.Call, scope: dict[str, Member]) -> Shape | None:
        fname = e.func.dotted
        shapes = [self.shape(a, scope) for a in e.args]
        member = self.info.members.get(fname) if len(e.func.parts) == 1 else None
        if member is not None and member.kind == "net":
            net: ast.Net = member.decl
            if len(e.args) != len(net.args):
                self.d.error(
                    "wrong-arity",
                    f"net '{fname}' takes {len(net.args)} arguments, got {len(e.args)}",
                    e.span,
                    f"declared at {net.span}",
                )
                return None
            ok = True
            for arg, shp, formal in zip(e.args, shapes, net.args):
                want = formal.size or 1
                if shp is None:
                    ok = False
                elif not ((want == 1 and shp in ((), (1,))) or (want > 1 and shp == (want,))):
                    self.d.error(
                        "size-mismatch",
                        f"argument '{formal.name}' of net '{fname}' has size {want}, got {fmt_shape(shp)}",
                        arg.span,
                    )
                    ok = False
            return (() if net.out == 1 else (net.out,)) if ok else None
        if fname in BUILTINS and len(e.func.parts) == 1:
            spec = BUILTINS[fname]
            lo, hi = spec.arity
            if not lo <= len(e.args) <= hi:
                self.d.error(
                    "wrong-arity", f"'{fname}' takes {lo} argument{'s' if lo > 1 else ''}, got {len(e.args)}", e.span
                )
                return None
            if any(s is None for s in shapes):
                return None
            out, err = spec.rule([s for s in shapes if s is not None])
            if err:
                self.d.error("size-mismatch", f"{fname}: {err}", e.span)
                return None
            return out
        if member is not None:
            self.d.error("not-callable", f"'{fname}' is a {member.kind}, not a function", e.func.span)
            return None
        nets = [n for n, m in self.info.members.items() if m.kind == "net"]
        self.d.error(
            "unknown-function", f"unknown function '{fname}'", e.func.span, suggest(fname, nets + list(BUILTINS))
        )
        return None

    def expect(
        self, e: ast.Expr, want: Shape, what: str, scope: dict[str, Member] | None = None, allow_scalar: bool = False
    ) -> None:
        """Report a ``size-mismatch`` unless ``e`` has shape ``want`` (or is a scalar, when allowed)."""
        got = self.shape(e, scope or {})
        if got is None or got == want or (allow_scalar and got == ()):
            return
        self.d.error(
            "size-mismatch", f"{what} has size {fmt_shape(want)}, but the expression is {fmt_shape(got)}", e.span
        )

    def constant(self, e: ast.Expr, what: str) -> Any:
        """The value of a constant expression; None (and a ``not-constant`` error) otherwise."""
        v = constant_value(e, getattr(self, "env", None))
        if v is None:
            self.d.error(
                "not-constant",
                f"{what} must be a constant (numbers, parameters, builtins and arithmetic)",
                e.span,
            )
        return v

    # ------------------------------------------------------------ declarations
    def declare(self, name: str, member: Member, span: Span) -> None:
        if name in self.info.members:
            first = self.info.members[name].decl
            self.d.error(
                "duplicate-name",
                f"'{name}' is declared twice in model '{self.model.name}'",
                span,
                f"first declared at {getattr(first, 'span', '?')}",
            )
            return
        if name in ("t",) or name in CONSTANTS:
            self.d.error("reserved-name", f"'{name}' is a builtin name and cannot be declared", span)
        self.info.members[name] = member

    def _ph_only(self, decl: Any, what: str) -> None:
        if self.model.kind != PH:
            self.d.error(
                "ph-only",
                f"'{what}' is only allowed in a port-Hamiltonian model",
                decl.span,
                f"declare the model as: model {self.model.name} : port_hamiltonian {{ ... }}",
            )
