"""Source text to :class:`nodedsl.frontend.ast.Module`: a cached LALR parser and a trivial Transformer.

Syntax errors become :class:`~nodedsl.core.diagnostics.Diagnostic` objects with code ``syntax``
(or a more specific code found by Lark's ``match_examples`` in a catalogue of common mistakes).

Example:
    >>> mod = parse_source("model M {\\n state x = 1\\n der(x) = -x\\n}\\n", "m.node")
    >>> [type(d).__name__ for d in mod.models[0].body]
    ['State', 'Der']
"""

from __future__ import annotations

from functools import lru_cache

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from ..core.diagnostics import Collector, Diagnostic, NodeDslError, Span
from ..core.resources import data_dir
from . import ast

KEYWORDS = frozenset(
    [
        "import",
        "as",
        "model",
        "state",
        "input",
        "param",
        "net",
        "let",
        "der",
        "output",
        "constraint",
        "for",
        "in",
        "learn",
        "positive",
        "hamiltonian",
        "J",
        "R",
        "port",
        "sub",
        "couple",
        "connect",
        "dataset",
        "train",
        "weights",
        "port_hamiltonian",
    ]
)


class _BracketNewlines:
    """Post-lexer: newlines inside ( ) and [ ] do not end a statement, so literals can span lines."""

    always_accept = ("_NL",)

    def process(self, stream):
        depth = 0
        for tok in stream:
            if tok.type in ("LPAR", "LSQB"):
                depth += 1
            elif tok.type in ("RPAR", "RSQB"):
                depth = max(0, depth - 1)
            elif tok.type == "_NL" and depth > 0:
                continue
            yield tok


@lru_cache(maxsize=1)
def _parser() -> Lark:
    text = (data_dir("grammar") / "nodedsl.lark").read_text(encoding="utf-8")
    return Lark(text, parser="lalr", postlex=_BracketNewlines(), propagate_positions=True, maybe_placeholders=True)


def _tok_span(file: str, tok: Token) -> Span:
    return Span(file, tok.line or 0, tok.column or 0, tok.end_line or 0, tok.end_column or 0)


class _ToAst(Transformer):
    """One method per grammar rule, each one AST constructor."""

    def __init__(self, file: str, diags: Collector):
        super().__init__()
        self.file = file
        self.diags = diags

    def _span(self, meta) -> Span:
        if getattr(meta, "empty", True):
            return Span(self.file, 0, 0)
        return Span(self.file, meta.line, meta.column, meta.end_line, meta.end_column)

    def _decl_name(self, tok: Token) -> str:
        if str(tok) in KEYWORDS:
            self.diags.error(
                "reserved-name",
                f"'{tok}' is a reserved keyword and cannot be used as a name",
                _tok_span(self.file, tok),
            )
        return str(tok)

    def _int(self, tok: Token, what: str) -> int:
        text = str(tok)
        if not text.isdigit() or int(text) < 1:
            self.diags.error("bad-size", f"{what} must be a positive integer, got '{text}'", _tok_span(self.file, tok))
            return 1
        return int(text)

    # ---- top level
    def start(self, items):
        mods = [i for i in items if isinstance(i, ast.Model)]
        return ast.Module(
            self.file,
            tuple(i for i in items if isinstance(i, ast.Import)),
            tuple(mods),
            tuple(i for i in items if isinstance(i, ast.Dataset)),
            tuple(i for i in items if isinstance(i, ast.Train)),
        )

    @v_args(meta=True)
    def import_stmt(self, meta, items):
        path = str(items[1])[1:-1]
        alias = self._decl_name(items[3]) if len(items) > 3 and items[3] is not None else None
        return ast.Import(path, alias, self._span(meta))

    @v_args(meta=True)
    def model(self, meta, items):
        name, kind = items[1], items[2]
        body = tuple(i for i in items[3:] if not isinstance(i, Token))
        kind_span = _tok_span(self.file, kind) if kind is not None else Span(self.file, 0, 0)
        return ast.Model(
            self._decl_name(name), str(kind) if kind is not None else None, body, self._span(meta), kind_span
        )

    # ---- declarations
    def size(self, items):
        return self._int(items[0], "a size")

    @v_args(meta=True)
    def state(self, meta, items):
        return ast.State(self._decl_name(items[1]), items[2], items[3], self._span(meta))

    @v_args(meta=True)
    def input(self, meta, items):
        return ast.Input(self._decl_name(items[1]), items[2], items[3], self._span(meta))

    @v_args(meta=True)
    def param(self, meta, items):
        return ast.Param(self._decl_name(items[1]), items[2], items[3], items[4], self._span(meta))

    @v_args(meta=True)
    def learn_free(self, meta, items):
        return ast.Learn("free", span=self._span(meta))

    @v_args(meta=True)
    def learn_positive(self, meta, items):
        return ast.Learn("positive", span=self._span(meta))

    @v_args(meta=True)
    def learn_interval(self, meta, items):
        return ast.Learn("interval", items[2], items[3], self._span(meta))

    @v_args(meta=True)
    def net(self, meta, items):
        args = tuple(i for i in items[2:] if isinstance(i, ast.NetArg))
        arrow = next(i for i, x in enumerate(items) if isinstance(x, Token) and x.type == "ARROW")
        out = self._int(items[arrow + 1], "a net's output size")
        opts = items[arrow + 2] or ()
        return ast.Net(self._decl_name(items[1]), args, out, opts, self._span(meta))

    @v_args(meta=True)
    def net_arg(self, meta, items):
        return ast.NetArg(self._decl_name(items[0]), items[1], self._span(meta))

    def options(self, items):
        return tuple(items)

    @v_args(meta=True)
    def option(self, meta, items):
        return ast.Entry(items[0], items[1], self._span(meta))

    @v_args(meta=True)
    def let(self, meta, items):
        return ast.Let(self._decl_name(items[1]), items[2], self._span(meta))

    @v_args(meta=True)
    def der(self, meta, items):
        return ast.Der(str(items[1]), items[2], self._span(meta))

    @v_args(meta=True)
    def noise(self, meta, items):
        return ast.Noise(None if items[1] is None else str(items[1]), items[2], self._span(meta))

    @v_args(meta=True)
    def output(self, meta, items):
        return ast.Output(self._decl_name(items[1]), items[2], self._span(meta))

    @v_args(meta=True)
    def constraint(self, meta, items):
        name = self._decl_name(items[1]) if items[1] is not None else None
        lhs, op, rhs, domains, weight = items[2], str(items[3]), items[4], items[5], items[6]
        return ast.Constraint(name, lhs, op, rhs, domains or (), weight, self._span(meta))

    def for_clause(self, items):
        return tuple(items[1:])

    @v_args(meta=True)
    def domain(self, meta, items):
        return ast.Domain(self._decl_name(items[0]), items[2], items[3], self._span(meta))

    def weight_clause(self, items):
        return items[1]

    @v_args(meta=True)
    def hamiltonian(self, meta, items):
        return ast.Hamiltonian(items[1], self._span(meta))

    @v_args(meta=True)
    def jmat(self, meta, items):
        return ast.JMatrix(items[1], self._span(meta))

    @v_args(meta=True)
    def rmat(self, meta, items):
        return ast.RMatrix(items[1], self._span(meta))

    @v_args(meta=True)
    def port(self, meta, items):
        return ast.Port(self._decl_name(items[1]), tuple(items[2:]), self._span(meta))

    @v_args(meta=True)
    def port_item(self, meta, items):
        return ast.PortItem(str(items[0]), items[1], self._span(meta))

    @v_args(meta=True)
    def sub(self, meta, items):
        overrides = tuple(i for i in items[3:] if isinstance(i, ast.Override))
        weights = next((str(i)[1:-1] for i in items if isinstance(i, Token) and i.type == "STRING"), None)
        return ast.Sub(self._decl_name(items[1]), items[2], overrides, weights, self._span(meta))

    @v_args(meta=True)
    def override(self, meta, items):
        return ast.Override(str(items[0]), items[1], self._span(meta))

    @v_args(meta=True)
    def couple(self, meta, items):
        ports = tuple(i for i in items if isinstance(i, ast.Name))
        rest = items[1 + len(ports) :]
        name, value = str(rest[0]), rest[1]
        if isinstance(value, tuple) and value and value[0] == "learn":
            return ast.Couple(ports, name, None, value[1], self._span(meta))
        return ast.Couple(ports, name, value, None, self._span(meta))

    def learn_skew(self, items):
        return ("learn", str(items[1]))

    @v_args(meta=True)
    def connect(self, meta, items):
        return ast.Connect(items[1], items[3], self._span(meta))

    # ---- data and training
    @v_args(meta=True)
    def dataset(self, meta, items):
        return ast.Dataset(self._decl_name(items[1]), tuple(items[2:]), self._span(meta))

    @v_args(meta=True)
    def train(self, meta, items):
        return ast.Train(items[1].dotted, tuple(items[2:]), self._span(meta))

    @v_args(meta=True)
    def entry(self, meta, items):
        return ast.Entry(items[0], items[1], self._span(meta))

    def key(self, items):
        return ".".join(str(t) for t in items)

    @v_args(meta=True)
    def v_number(self, meta, items):
        return ast.VNumber(float(items[0]), self._span(meta))

    @v_args(meta=True)
    def v_neg_number(self, meta, items):
        return ast.VNumber(-float(items[0]), self._span(meta))

    @v_args(meta=True)
    def v_string(self, meta, items):
        return ast.VString(str(items[0])[1:-1], self._span(meta))

    @v_args(meta=True)
    def v_name(self, meta, items):
        return ast.VName(items[0].dotted, self._span(meta))

    @v_args(meta=True)
    def v_list(self, meta, items):
        return ast.VList(tuple(i for i in items if i is not None), self._span(meta))

    @v_args(meta=True)
    def v_map(self, meta, items):
        return ast.VMap(tuple(items), self._span(meta))

    @v_args(meta=True)
    def v_call(self, meta, items):
        return ast.VCall(items[0].dotted, tuple(i for i in items[1:] if i is not None), self._span(meta))

    @v_args(meta=True)
    def pos_arg(self, meta, items):
        return ast.Arg(None, items[0], self._span(meta))

    @v_args(meta=True)
    def kw_arg(self, meta, items):
        return ast.Arg(str(items[0]), items[1], self._span(meta))

    # ---- expressions
    def _bin(op):
        @v_args(meta=True)
        def build(self, meta, items):
            return ast.BinOp(op, items[0], items[1], self._span(meta))

        return build

    add, sub_, mul, div, matmul, pow = _bin("+"), _bin("-"), _bin("*"), _bin("/"), _bin("@"), _bin("^")

    @v_args(meta=True)
    def neg(self, meta, items):
        return ast.Neg(items[0], self._span(meta))

    @v_args(meta=True)
    def number(self, meta, items):
        return ast.Num(float(items[0]), str(items[0]), self._span(meta))

    @v_args(meta=True)
    def name(self, meta, items):
        return items[0]

    @v_args(meta=True)
    def dotted(self, meta, items):
        return ast.Name(tuple(str(t) for t in items), self._span(meta))

    @v_args(meta=True)
    def call(self, meta, items):
        return ast.Call(items[0], tuple(i for i in items[1:] if i is not None), self._span(meta))

    @v_args(meta=True)
    def array(self, meta, items):
        return ast.Array(tuple(items), self._span(meta))

    @v_args(meta=True)
    def index(self, meta, items):
        return ast.Index(items[0], items[1], self._span(meta))


# ---------------------------------------------------------------- syntax errors
# Lark's match_examples: a catalogue of common mistakes, each mapped to a code and an explanation.
_EXAMPLES: dict[tuple[str, str], list[str]] = {
    ("missing-equals", "missing '=' in this declaration"): [
        "model M { param g 9.81 }",
        "model M { let e x }",
        "model M { state x 1 }",
        "model M { der(x) x }",
        "model M { output y x }",
        "model M { hamiltonian p }",
        "model M { J [[0]] }",
        "dataset d { seed 0 }",
        "train M { epochs 10 }",
    ],
    ("unclosed-brace", "a '{' is never closed: add '}' at the end of the block"): [
        "model M { state x = 1",
        "model M { state x = 1\n",
        "dataset d { seed = 0\n",
        "train M { epochs = 1\n",
        "model M {\n",
    ],
    ("der-syntax", "write the state derivative as der(x) = expression"): [
        "model M { der x = 1 }",
        "model M { der x }",
        "model M { der[x] = 1 }",
    ],
    ("comparison-outside-constraint", "'==', '<=' and '>=' are only allowed in a constraint"): [
        "model M { let a = x == 1 }",
        "model M { der(x) == 1 }",
        "model M { der(x) = x <= 1 }",
        "model M { output y = x >= 0 }",
        "model M { let a = x <= 1 }",
        "model M { param a == 1 }",
    ],
    (
        "unexpected-statement",
        "a model statement starts with a keyword (state, input, param, net, let, der, "
        "output, constraint, hamiltonian, J, R, port, sub, couple, connect)",
    ): [
        "model M { x = 1 }",
        "model M { foo x = 1 }",
        "model M { theta' = 1 }",
    ],
    ("unbalanced-brackets", "unbalanced parentheses or brackets"): [
        "model M { let a = (x + 1 }",
        "model M { let a = [x, 1 }",
        "model M { let a = x + 1) }",
        "model M { let a = f(x }",
    ],
    ("missing-operand", "an operator is missing its operand"): [
        "model M { let a = x + }",
        "model M { let a = * x }",
        "model M { let a = x * / y }",
    ],
    ("net-syntax", "declare a net as: net NAME(args) -> SIZE { options }"): [
        "model M { net f(x) { hidden = [8] } }",
        "model M { net f(x) }",
        "model M { net f -> 1 }",
        "model M { net f() -> 1 }",
    ],
}


def _variants(examples: dict[tuple[str, str], list[str]]) -> dict[tuple[str, str], list[str]]:
    """Each example also with a newline after '{' and after one or two earlier statements.

    Lark matches an error by its parser state including the stack depth, which a leading newline or
    earlier statements change."""
    out = {}
    for label, items in examples.items():
        more = []
        for ex in items:
            more.append(ex)
            if "{ " in ex:
                head, rest = ex.split("{ ", 1)
                first = "state a = 1" if head.startswith("model") else "seed = 1"
                more.append(f"{head}{{\n  {rest}")
                more.append(f"{head}{{\n  {first}\n  {rest}")
                more.append(f"{head}{{\n  {first}\n  {first}\n  {rest}")
        out[label] = more
    return out


_EXAMPLES = _variants(_EXAMPLES)

_TOKEN_WORDS = {
    "NAME": "a name",
    "NUMBER": "a number",
    "STRING": "a string",
    "_NL": "end of line",
    "$END": "end of file",
    "LBRACE": "'{'",
    "RBRACE": "'}'",
    "LPAR": "'('",
    "RPAR": "')'",
    "LSQB": "'['",
    "RSQB": "']'",
    "EQUAL": "'='",
    "COMMA": "','",
    "COLON": "':'",
    "SEMICOLON": "';'",
    "DOT": "'.'",
    "PLUS": "'+'",
    "MINUS": "'-'",
    "STAR": "'*'",
    "SLASH": "'/'",
    "CIRCUMFLEX": "'^'",
    "AT": "'@'",
    "ARROW": "'->'",
    "CMP": "a comparison",
    "JKW": "'J'",
    "RKW": "'R'",
}


def _word(term: str) -> str:
    if term in _TOKEN_WORDS:
        return _TOKEN_WORDS[term]
    if term.isupper() and term.isalpha():
        return f"'{term.lower()}'"
    return term


def _expected(terms) -> str:
    terms = [t for t in terms if not t.startswith("__")]
    if len(terms) > 1:  # the post-lexer makes end of line acceptable everywhere; it is rarely the fix
        terms = [t for t in terms if t != "_NL"]
    words = sorted({_word(t) for t in terms})
    if not words:
        return ""
    if len(words) > 8:
        words = words[:8] + ["..."]
    return "expected " + ", ".join(words)


@lru_cache(maxsize=1)
def _catalogue_by_state() -> dict:
    """The catalogue keyed by the LALR state at the error and the offending token type.

    ``match_examples`` also compares the parser's stack depth, which earlier declarations and
    nesting change; the state alone recognizes a mistake wherever it is made."""
    table: dict = {}
    for label, examples in _EXAMPLES.items():
        for text in examples:
            try:
                _parser().parse(text)
            except UnexpectedToken as ex:
                table.setdefault((ex.state.position, ex.token.type), label)
                table.setdefault((ex.state.position, None), label)
            except UnexpectedInput:
                continue
    return table


def _syntax_diagnostic(err: UnexpectedInput, text: str, file: str) -> Diagnostic:
    line, col = getattr(err, "line", 0) or 0, getattr(err, "column", 0) or 0
    if isinstance(err, UnexpectedEOF) or (isinstance(err, UnexpectedToken) and err.token.type == "$END"):
        lines = text.splitlines() or [""]
        line, col = len(lines), len(lines[-1]) + 1
    code, message = "syntax", "invalid syntax"
    if isinstance(err, UnexpectedCharacters):
        ch = text[err.pos_in_stream] if 0 <= err.pos_in_stream < len(text) else "?"
        code, message = "unexpected-character", f"unexpected character {ch!r}"
    elif isinstance(err, UnexpectedToken):
        tok = err.token
        shown = "end of file" if tok.type == "$END" else ("end of line" if tok.type == "_NL" else f"'{tok}'")
        message = f"unexpected {shown}"
    label = None
    try:
        label = err.match_examples(_parser().parse, _EXAMPLES, use_accepts=True, token_type_match_fallback=True)
        if label is None and isinstance(err, UnexpectedToken):
            table = _catalogue_by_state()
            position = err.state.position
            label = table.get((position, err.token.type)) or table.get((position, None))
    except Exception:  # the catalogue is a hint only; never let it hide the real error
        label = None
    notes = []
    if (
        label is None
        and isinstance(err, UnexpectedToken)
        and err.token.type == "$END"
        and "RBRACE" in (err.expected or ())
    ):
        label = ("unclosed-brace", "a '{' is never closed: add '}' at the end of the block")
    if label is not None:
        code, hint = label
        message = f"{message}: {hint}" if code != "syntax" else message
    expected = getattr(err, "expected", None) or getattr(err, "allowed", None)
    if expected:
        notes.append(_expected(expected))
    end_col = col + 1
    if isinstance(err, UnexpectedToken) and err.token.type not in ("$END", "_NL"):
        end_col = col + max(1, len(str(err.token)))
    return Diagnostic(code, message, Span(file, line, col, line, end_col), tuple(n for n in notes if n))


def parse_source(text: str, file: str = "<string>") -> ast.Module:
    """Parse one file's text; raise :class:`NodeDslError` with located diagnostics on bad input."""
    if "\x00" in text:
        raise NodeDslError.single("bad-encoding", "the file contains a NUL byte", Span(file, 1, 1))
    try:
        tree = _parser().parse(text if text.endswith("\n") else text + "\n")
    except UnexpectedInput as err:
        raise NodeDslError([_syntax_diagnostic(err, text, file)]) from None
    diags = Collector()
    try:
        module = _ToAst(file, diags).transform(tree)
    except VisitError as err:  # a bug in a transformer method: still a located, coded diagnostic
        raise NodeDslError.single(
            "internal", f"could not build the syntax tree: {err.orig_exc}", Span(file, 1, 1)
        ) from None
    diags.raise_if_errors()
    return module
