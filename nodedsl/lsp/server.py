"""``nodedsl lsp``: the Language Server Protocol over stdio, built on pygls.

Diagnostics on open, change and save (the codes, spans and notes of ``nodedsl check``; notes are
related information, pointing at the place a note names): the front end's at once, then, when it
finds no error and typing has paused, those of the structural proofs as a second publication;
hover; go to definition and references across imports and into sub-model members; completion;
document symbols; rename; formatting.

Example::

    nodedsl lsp        # an editor starts this and speaks JSON-RPC on its stdin/stdout
"""

from __future__ import annotations

import asyncio
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lsprotocol import types as T
from pygls.lsp.server import LanguageServer
from pygls.uris import from_fs_path, to_fs_path

from ..core.diagnostics import Diagnostic, NodeDslError, Span
from ..core.version import __version__
from ..frontend import ast
from .analysis import Analysis, Analyzer, resolve_import
from .complete import analyze_for_completion, complete
from .hover import hover_text
from .index import _KIND, name_span, references, resolve

server = LanguageServer("nodedsl", __version__)
analyzer = Analyzer()
_prover = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nodedsl-proofs")
PROOF_DELAY = 0.3  # seconds without an edit before the structural proofs run
_NOTE_AT = re.compile(r"\bat (\S+?):(\d+):(\d+)")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ITEM_KIND = {
    "state": T.CompletionItemKind.Variable,
    "input": T.CompletionItemKind.Variable,
    "param": T.CompletionItemKind.Constant,
    "net": T.CompletionItemKind.Function,
    "let": T.CompletionItemKind.Variable,
    "output": T.CompletionItemKind.Field,
    "port": T.CompletionItemKind.Interface,
    "sub": T.CompletionItemKind.Module,
    "model": T.CompletionItemKind.Class,
    "dataset": T.CompletionItemKind.Struct,
    "builtin": T.CompletionItemKind.Function,
    "constant": T.CompletionItemKind.Constant,
    "keyword": T.CompletionItemKind.Keyword,
    "key": T.CompletionItemKind.Property,
    "solver": T.CompletionItemKind.EnumMember,
    "option": T.CompletionItemKind.Property,
}
_SYMBOL_KIND = {
    "state": T.SymbolKind.Variable,
    "input": T.SymbolKind.Variable,
    "param": T.SymbolKind.Constant,
    "net": T.SymbolKind.Function,
    "let": T.SymbolKind.Variable,
    "output": T.SymbolKind.Field,
    "port": T.SymbolKind.Interface,
    "sub": T.SymbolKind.Module,
}


def to_range(span: Span) -> T.Range:
    """A 1-based, end-exclusive span as a 0-based LSP range (a point span covers one character)."""
    line, col = max(span.line - 1, 0), max(span.col - 1, 0)
    if span.end_line > 0 and (span.end_line, span.end_col) > (span.line, span.col):
        return T.Range(T.Position(line, col), T.Position(span.end_line - 1, max(span.end_col - 1, 0)))
    return T.Range(T.Position(line, col), T.Position(line, col + 1))


def _location(span: Span) -> T.Location:
    return T.Location(from_fs_path(span.file) or span.file, to_range(span))


def _lsp_diagnostic(d: Diagnostic, at: Span | None = None, prefix: str = "") -> T.Diagnostic:
    span = at or d.span
    related = []
    for note in d.notes:
        m = _NOTE_AT.search(note)
        where = Span(str(Path(m.group(1)).resolve()), int(m.group(2)), int(m.group(3))) if m else d.span
        related.append(T.DiagnosticRelatedInformation(_location(where), note))
    return T.Diagnostic(
        range=to_range(span),
        message=prefix + d.message,
        severity=T.DiagnosticSeverity.Error if d.severity == "error" else T.DiagnosticSeverity.Warning,
        code=d.code,
        source="nodedsl",
        related_information=related or None,
    )


def lsp_diagnostics(res: Analysis) -> list[T.Diagnostic]:
    """The root file's diagnostics; a problem in an imported file is shown at the import naming it."""
    out = []
    mod = res.module(res.root)
    for d in res.diagnostics:
        if d.span.file == res.root or d.span.line <= 0:
            out.append(_lsp_diagnostic(d))
            continue
        for imp in mod.imports if mod else ():
            if resolve_import(imp, res.root) == d.span.file:
                out.append(_lsp_diagnostic(d, imp.span, f"in {Path(d.span.file).name}:{d.span.line}: "))
    return out


def _publish(ls: LanguageServer, uri: str, res: Analysis, version: int | None) -> None:
    params = T.PublishDiagnosticsParams(uri=uri, diagnostics=lsp_diagnostics(res), version=version)
    ls.text_document_publish_diagnostics(params)


def _analyze(ls: LanguageServer, uri: str, proofs: bool) -> Analysis:
    doc = ls.workspace.get_text_document(uri)
    path = to_fs_path(uri) or uri
    try:
        res = analyzer.analyze(path, doc.source, proofs=proofs)
    except Exception as err:  # never let a bug take the editor's server down
        diag = Diagnostic("internal", f"internal error: {type(err).__name__}: {err}", Span(path, 1, 1))
        res = Analysis(path, analyzer.load(path, doc.source)[0], None, [diag])
    _publish(ls, uri, res, doc.version)
    return res


async def _recheck(ls: LanguageServer, uri: str) -> None:
    """Front-end diagnostics at once; then, once typing pauses, the structural proofs (a worker thread:
    proving a large composite takes seconds, and requests are answered meanwhile)."""
    res = _analyze(ls, uri, proofs=False)
    if any(d.severity == "error" for d in res.diagnostics):
        return
    doc = ls.workspace.get_text_document(uri)
    version, text = doc.version, doc.source
    await asyncio.sleep(PROOF_DELAY)
    if ls.workspace.get_text_document(uri).version != version:
        return  # a newer edit has its own re-check
    path = to_fs_path(uri) or uri
    full = await asyncio.get_running_loop().run_in_executor(_prover, analyzer.analyze, path, text)
    if ls.workspace.get_text_document(uri).version == version:
        _publish(ls, uri, full, version)


@server.feature(T.TEXT_DOCUMENT_DID_OPEN)
async def did_open(ls: LanguageServer, params: T.DidOpenTextDocumentParams) -> None:
    await _recheck(ls, params.text_document.uri)


@server.feature(T.TEXT_DOCUMENT_DID_CHANGE)
async def did_change(ls: LanguageServer, params: T.DidChangeTextDocumentParams) -> None:
    await _recheck(ls, params.text_document.uri)


@server.feature(T.TEXT_DOCUMENT_DID_SAVE)
async def did_save(ls: LanguageServer, params: T.DidSaveTextDocumentParams) -> None:
    await _recheck(ls, params.text_document.uri)


@server.feature(T.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: LanguageServer, params: T.DidCloseTextDocumentParams) -> None:
    analyzer.buffers.pop(to_fs_path(params.text_document.uri) or "", None)
    ls.text_document_publish_diagnostics(T.PublishDiagnosticsParams(uri=params.text_document.uri, diagnostics=[]))


def _current(ls: LanguageServer, uri: str) -> tuple[Analysis, str]:
    path = to_fs_path(uri) or uri
    return analyzer.analyze(path, ls.workspace.get_text_document(uri).source, proofs=False), path


@server.feature(T.TEXT_DOCUMENT_HOVER)
def hover(ls: LanguageServer, params: T.HoverParams) -> T.Hover | None:
    res, path = _current(ls, params.text_document.uri)
    pos = params.position
    target = resolve(res, path, pos.line + 1, pos.character + 1)
    if target is None:
        return None
    return T.Hover(T.MarkupContent(T.MarkupKind.Markdown, hover_text(res, target)))


@server.feature(T.TEXT_DOCUMENT_DEFINITION)
def definition(ls: LanguageServer, params: T.DefinitionParams) -> T.Location | None:
    res, path = _current(ls, params.text_document.uri)
    target = resolve(res, path, params.position.line + 1, params.position.character + 1)
    return _location(target.span) if target is not None and target.span is not None else None


@server.feature(T.TEXT_DOCUMENT_REFERENCES)
def find_references(ls: LanguageServer, params: T.ReferenceParams) -> list[T.Location]:
    res, path = _current(ls, params.text_document.uri)
    target = resolve(res, path, params.position.line + 1, params.position.character + 1)
    if target is None:
        return []
    spans = references(res, target)
    if not params.context.include_declaration:
        spans = [s for s in spans if s != target.span]
    return [_location(s) for s in spans]


@server.feature(T.TEXT_DOCUMENT_COMPLETION, T.CompletionOptions(trigger_characters=["."]))
def completion(ls: LanguageServer, params: T.CompletionParams) -> T.CompletionList:
    uri, pos = params.text_document.uri, params.position
    path = to_fs_path(uri) or uri
    text = ls.workspace.get_text_document(uri).source
    lines = text.split("\n")
    before = lines[pos.line][: pos.character] if pos.line < len(lines) else ""
    res = analyze_for_completion(analyzer, path, text, pos.line + 1)
    items = [
        T.CompletionItem(
            label=label,
            kind=_ITEM_KIND.get(kind, T.CompletionItemKind.Text),
            detail=detail or None,
            documentation=doc or None,
        )
        for label, kind, detail, doc in complete(res, path, pos.line + 1, before)
    ]
    return T.CompletionList(is_incomplete=False, items=items)


def _symbols(res: Analysis, path: str) -> list[T.DocumentSymbol]:
    mod = res.module(path)
    text = res.source.texts.get(path, "")
    out = []
    for m in mod.models if mod else ():
        children = []
        for d in m.body:
            name = getattr(d, "name", None)
            kind = _SYMBOL_KIND.get(_KIND.get(type(d), ""))
            if isinstance(d, ast.Constraint):
                name, kind = d.name or f"constraint (line {d.span.line})", T.SymbolKind.Boolean
            if name is None or kind is None:
                continue
            sel = name_span(path, text, d.span, name) if not isinstance(d, ast.Constraint) else d.span
            children.append(T.DocumentSymbol(name, kind, to_range(d.span), to_range(sel), detail=_KIND.get(type(d))))
        sel = name_span(path, text, m.span, m.name)
        out.append(
            T.DocumentSymbol(m.name, T.SymbolKind.Class, to_range(m.span), to_range(sel), m.kind, children=children)
        )
    for ds in mod.datasets if mod else ():
        sel = name_span(path, text, ds.span, ds.name)
        out.append(T.DocumentSymbol(ds.name, T.SymbolKind.Struct, to_range(ds.span), to_range(sel), "dataset"))
    for tr in mod.trains if mod else ():
        out.append(T.DocumentSymbol(f"train {tr.model}", T.SymbolKind.Event, to_range(tr.span), to_range(tr.span)))
    for ob in mod.observers if mod else ():
        sel = name_span(path, text, ob.span, ob.name)
        detail = f"observer for {ob.model}"
        out.append(T.DocumentSymbol(ob.name, T.SymbolKind.Interface, to_range(ob.span), to_range(sel), detail))
    return out


@server.feature(T.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
def document_symbols(ls: LanguageServer, params: T.DocumentSymbolParams) -> list[T.DocumentSymbol]:
    res, path = _current(ls, params.text_document.uri)
    return _symbols(res, path)


@server.feature(T.TEXT_DOCUMENT_RENAME)
def rename(ls: LanguageServer, params: T.RenameParams) -> T.WorkspaceEdit | None:
    from ..frontend.parse import KEYWORDS

    res, path = _current(ls, params.text_document.uri)
    target = resolve(res, path, params.position.line + 1, params.position.character + 1)
    new = params.new_name
    if target is None or target.span is None:
        raise ValueError("nothing to rename here (a builtin, a keyword or an unknown name)")
    if not _IDENT.fullmatch(new) or new in KEYWORDS or new in ("t", "pi"):
        raise ValueError(f"'{new}' is not a name that can be declared")
    changes: dict[str, list[T.TextEdit]] = {}
    for span in references(res, target):
        changes.setdefault(from_fs_path(span.file) or span.file, []).append(T.TextEdit(to_range(span), new))
    return T.WorkspaceEdit(changes=changes)


@server.feature(T.TEXT_DOCUMENT_FORMATTING)
def formatting(ls: LanguageServer, params: T.DocumentFormattingParams) -> list[T.TextEdit] | None:
    from ..frontend.format import format_source

    doc = ls.workspace.get_text_document(params.text_document.uri)
    try:
        out = format_source(doc.source, to_fs_path(params.text_document.uri) or "")
    except NodeDslError:
        return None  # the diagnostics already say why
    if out == doc.source:
        return []
    end = T.Position(len(doc.lines), 0)
    return [T.TextEdit(T.Range(T.Position(0, 0), end), out)]


def serve() -> None:
    """Run the server on stdin/stdout until the client exits."""
    server.start_io()
