"""The language server, driven as an editor drives it: the real ``nodedsl lsp`` process, JSON-RPC over
stdio with LSP framing (Content-Length headers). One server serves the whole module (a session).
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 60.0

SPRING = """model Spring : port_hamiltonian {
    state stretch = 0.0
    param k = 1.0
    hamiltonian = k * strech^2 / 2
    J = [[0]]
    port ends { G = [[-1, 1]] }
}
"""
TWO = """import "msd.node"

{spring}
model TwoMasses : port_hamiltonian {{
    sub left   = MassSpringDamperTruth(m = 1.0)
    sub right  = MassSpringDamperTruth(m = 2.0, kk = 0.5)
    sub spring = Spring(k = 1.5)
    couple [left.force, right.force, spring.ends] C = [[0, 0, -1, 0], [0, 0, 0, -1], [1, 0, 0, 0], [0, 1, 0, 0]]
}}

dataset coupled {{
    model = TwoMasses
    time = span(0, 5, step = 0.05)
    initial = {{ left.q = 1, right.q = 0 }}
}}
"""


class Client:
    """A minimal LSP client: requests wait for their response; notifications are queued."""

    def __init__(self, cwd: Path):
        cmd = [sys.executable, "-c", "from nodedsl.cli.main import main; main()", "lsp"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=cwd)
        self.next_id = 0
        self.responses: dict[int, dict] = {}
        self.notes: queue.Queue = queue.Queue()
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        out = self.proc.stdout
        while True:
            length = None
            while True:
                line = out.readline()
                if not line:
                    return
                if line in (b"\r\n", b"\n"):
                    break
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            msg = json.loads(out.read(length))
            if "id" in msg and "method" not in msg:
                with self.cond:
                    self.responses[msg["id"]] = msg
                    self.cond.notify_all()
            elif "method" in msg:
                self.notes.put(msg)

    def _send(self, msg: dict) -> None:
        body = json.dumps(msg).encode()
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def request(self, method: str, params: dict):
        self.next_id += 1
        rid = self.next_id
        self._send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
        with self.cond:
            assert self.cond.wait_for(lambda: rid in self.responses, TIMEOUT), f"no response to {method}"
            msg = self.responses.pop(rid)
        assert "error" not in msg, msg
        return msg["result"]

    def notify(self, method: str, params: dict) -> None:
        self._send({"jsonrpc": "2.0", "method": method, "params": params})

    def diagnostics(self, uri: str) -> list[dict]:
        deadline = time.monotonic() + TIMEOUT
        while True:
            msg = self.notes.get(timeout=max(deadline - time.monotonic(), 0.1))
            if msg["method"] == "textDocument/publishDiagnostics" and msg["params"]["uri"] == uri:
                return msg["params"]["diagnostics"]


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lsp")
    (folder / "msd.node").write_text((ROOT / "examples" / "msd.node").read_text())
    path = folder / "two.node"
    text = TWO.format(spring=SPRING)
    path.write_text(text)
    client = Client(ROOT)
    init = client.request("initialize", {"processId": None, "rootUri": folder.as_uri(), "capabilities": {}})
    client.notify("initialized", {})
    uri = path.as_uri()
    client.notify(
        "textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "nodedsl", "version": 1, "text": text}}
    )
    first = client.diagnostics(uri)
    yield client, uri, folder, text, first, init["capabilities"]
    client.request("shutdown", None)
    client.notify("exit", None)
    client.proc.wait(timeout=TIMEOUT)


def _pos(text: str, needle: str, offset: int = 0) -> dict:
    """The 0-based position of ``needle`` (plus ``offset`` characters) in ``text``."""
    i = text.index(needle) + offset
    return {"line": text.count("\n", 0, i), "character": i - text.rfind("\n", 0, i) - 1}


def test_two_errors_then_one_after_a_change(session):
    client, uri, _, text, first, caps = session
    assert caps["completionProvider"]["triggerCharacters"] == ["."]
    got = sorted((d["code"], d["range"]["start"]["line"], d["range"]["start"]["character"]) for d in first)
    assert got == [("undefined-name", 5, 22), ("unknown-override", 12, 48)]
    name = next(d for d in first if d["code"] == "undefined-name")
    assert name["range"]["end"] == {"line": 5, "character": 28}  # the whole name 'strech'
    assert "did you mean 'stretch'?" in [r["message"] for r in name["relatedInformation"]]
    fixed = text.replace("strech", "stretch")
    client.notify(
        "textDocument/didChange",
        {"textDocument": {"uri": uri, "version": 2}, "contentChanges": [{"text": fixed}]},
    )
    [only] = client.diagnostics(uri)
    assert only["code"] == "unknown-override" and only["range"]["start"]["line"] == 12


def test_hover_shows_the_port_output(session):
    client, uri, _, text, _, _ = session
    hover = client.request(
        "textDocument/hover", {"textDocument": {"uri": uri}, "position": _pos(text, "left.force", 6)}
    )
    value = hover["contents"]["value"]
    assert "**port** `force`" in value and "y = G^T grad H" in value and "G = [[0], [1]]" in value
    assert "y(force) = p/m" in value
    hover = client.request("textDocument/hover", {"textDocument": {"uri": uri}, "position": _pos(text, "k = 1.0", 0)})
    assert hover["contents"]["value"] == "**param** `k`: scalar = `1.0` (known)"


def test_definition_across_an_import(session):
    client, uri, folder, text, _, _ = session
    loc = client.request(
        "textDocument/definition", {"textDocument": {"uri": uri}, "position": _pos(text, "MassSpringDamperTruth")}
    )
    msd = (folder / "msd.node").read_text()
    assert loc["uri"] == (folder / "msd.node").as_uri()
    assert loc["range"]["start"] == _pos(msd, "MassSpringDamperTruth :")
    # a sub-model's member, through the dotted name in a dataset
    loc = client.request("textDocument/definition", {"textDocument": {"uri": uri}, "position": _pos(text, "left.q", 5)})
    assert loc["uri"].endswith("msd.node")
    assert msd.splitlines()[17] == "    state q = 1.0"  # in MassSpringDamperTruth
    assert loc["range"]["start"] == {"line": 17, "character": 10}


def test_completion_after_a_dot(session):
    client, uri, _, text, _, _ = session
    typing = text.replace("    couple [", "    let v = left.\n    couple [", 1)
    client.notify(
        "textDocument/didChange", {"textDocument": {"uri": uri, "version": 3}, "contentChanges": [{"text": typing}]}
    )
    at = _pos(typing, "left.\n", 5)
    result = client.request("textDocument/completion", {"textDocument": {"uri": uri}, "position": at})
    labels = {i["label"] for i in result["items"]}
    assert labels == {"q", "p", "m", "k", "c", "force"}
    client.notify(
        "textDocument/didChange", {"textDocument": {"uri": uri, "version": 4}, "contentChanges": [{"text": text}]}
    )
    at = _pos(text, "solver", 0) if "solver" in text else _pos(text, "    time =", 4)
    result = client.request("textDocument/completion", {"textDocument": {"uri": uri}, "position": at})
    assert {"trajectories", "noise", "seed", "initial"} <= {i["label"] for i in result["items"]}


def test_rename_a_sub_model(session):
    client, uri, _, text, _, _ = session
    edit = client.request(
        "textDocument/rename", {"textDocument": {"uri": uri}, "position": _pos(text, "left "), "newName": "first"}
    )
    ranges = sorted((e["range"]["start"]["line"], e["range"]["start"]["character"]) for e in edit["changes"][uri])
    assert ranges == [(11, 8), (14, 12), (20, 16)]  # the declaration, the couple, the dataset key
    assert {e["newText"] for e in edit["changes"][uri]} == {"first"}


def test_references_symbols_and_formatting(session):
    client, uri, _, text, _, _ = session
    refs = client.request(
        "textDocument/references",
        {
            "textDocument": {"uri": uri},
            "position": _pos(text, "MassSpringDamperTruth"),
            "context": {"includeDeclaration": True},
        },
    )
    assert sorted(r["uri"].rsplit("/", 1)[1] for r in refs) == ["msd.node", "msd.node", "two.node", "two.node"]
    symbols = client.request("textDocument/documentSymbol", {"textDocument": {"uri": uri}})
    assert [s["name"] for s in symbols] == ["Spring", "TwoMasses", "coupled"]
    assert [c["name"] for c in symbols[0]["children"]] == ["stretch", "k", "ends"]
    messy = text.replace("    param k = 1.0", "  param   k=1.0 # stiffness")
    client.notify(
        "textDocument/didChange", {"textDocument": {"uri": uri, "version": 9}, "contentChanges": [{"text": messy}]}
    )
    options = {"tabSize": 4, "insertSpaces": True}
    [edit] = client.request("textDocument/formatting", {"textDocument": {"uri": uri}, "options": options})
    assert edit["newText"] == text.replace("    param k = 1.0", "    param k = 1.0  # stiffness")
    assert edit["range"] == {"start": {"line": 0, "character": 0}, "end": {"line": text.count("\n"), "character": 0}}


def test_proof_diagnostics_come_second(session):
    """A file the front end accepts: no diagnostic at once, then the structural proofs' not-psd."""
    client, _, folder, _, _, _ = session
    path = folder / "psd.node"
    text = (ROOT / "tests" / "errors" / "not_psd.node").read_text()
    path.write_text(text)
    uri = path.as_uri()
    client.notify(
        "textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "nodedsl", "version": 1, "text": text}}
    )
    assert client.diagnostics(uri) == []
    [proof] = client.diagnostics(uri)
    assert proof["code"] == "not-psd" and proof["range"]["start"]["line"] == 5


# ------------------------------------------------------------------ incremental parsing (in process)
def _spans(node, out: list) -> list:
    import dataclasses

    from nodedsl.core.diagnostics import Span

    if isinstance(node, Span):
        out.append(node)
    elif isinstance(node, tuple):
        for n in node:
            _spans(n, out)
    elif dataclasses.is_dataclass(node):
        for f in dataclasses.fields(node):
            _spans(getattr(node, f.name), out)
    return out


def _same_parse(parser, text: str) -> None:
    """The incremental parse equals the whole-file parse, spans included, or both fail alike."""
    from nodedsl import NodeDslError
    from nodedsl.frontend.parse import parse_source

    try:
        want = parse_source(text, "f.node")
    except NodeDslError as err:
        with pytest.raises(NodeDslError) as got:
            parser.parse(text, "f.node")
        assert got.value.diagnostics == err.diagnostics
        return
    got = parser.parse(text, "f.node")
    assert got == want and _spans(got, []) == _spans(want, [])


FILES = sorted((ROOT / "examples").glob("*.node")) + sorted((ROOT / "stdlib").glob("*.node"))
FILES += sorted((ROOT / "tests" / "fmt").glob("*.node"))


def test_incremental_parse_of_every_file():
    from nodedsl.lsp.incremental import IncrementalParser

    parser = IncrementalParser()
    for path in FILES:
        _same_parse(parser, path.read_text())


def test_incremental_parse_after_line_edits():
    """Random one-line edits (delete, duplicate, move, cut a line) of every file, parsed after each other."""
    import random

    from nodedsl.lsp.incremental import IncrementalParser

    rng = random.Random(11)
    parser = IncrementalParser()
    for path in FILES:
        lines = path.read_text().split("\n")
        for _ in range(6):
            i = rng.randrange(len(lines))
            op = rng.choice(["delete", "duplicate", "swap", "cut", "join"])
            edited = list(lines)
            if op == "delete":
                del edited[i]
            elif op == "duplicate":
                edited.insert(i, lines[i])
            elif op == "swap" and i + 1 < len(lines):
                edited[i], edited[i + 1] = edited[i + 1], edited[i]
            elif op == "cut":
                edited[i] = lines[i][: rng.randrange(len(lines[i]) + 1)]
            elif op == "join" and i + 1 < len(lines):
                edited[i : i + 2] = [lines[i] + " " + lines[i + 1]]
            _same_parse(parser, "\n".join(edited))


def test_completion_of_solvers_options_and_keys():
    """In process: solver names after `solver =`, a solver's options inside its call, train keys."""
    from nodedsl.core.solvers import CATALOG
    from nodedsl.lsp.analysis import Analyzer
    from nodedsl.lsp.complete import analyze_for_completion, complete

    text = (ROOT / "examples" / "pendulum.node").read_text()
    lines = text.split("\n")
    at = next(i for i, line in enumerate(lines) if line.strip().startswith("solver = rk4(")) + 1
    an = Analyzer()

    def labels(before: str) -> dict[str, str]:
        edited = "\n".join(lines[: at - 1] + [before] + lines[at:])
        res = analyze_for_completion(an, "/tmp/p.node", edited, at)
        return {label: kind for label, kind, _, _ in complete(res, "/tmp/p.node", at, before)}

    assert set(labels("    solver = ")) == set(CATALOG)
    assert set(labels("    solver = rk4(")) == {o.name for o in CATALOG["rk4"].options} == {"step"}
    assert set(labels("    solver = dopri5(rtol = 1e-6, ")) >= {"rtol", "atol", "max_steps"}
    keys = labels("    ")
    assert {"epochs", "optimizer", "window", "data"} <= set(keys) and keys["epochs"] == "key"
    assert set(labels("    data = ")) == {"swings"}


OBSERVED = """model VanDerPol {
    state x1 = 1.0
    state x2 = 0.0
    state h latent = 0.0
    der(x1) = x2
    der(x2) = (1 - x1^2) * x2 - x1
    der(h) = -h
}

observer Estimator for VanDerPol {
    measure y = x11
    kind = kkl(dim = 3, poles = [-1, -2, -3])
    net T_inv(z[3]) -> 3 { hidden = [16] }
}
"""


def test_observer_blocks_are_checked_listed_and_resolved(session):
    """Observers (contract section 11) through the incremental parse: their errors, symbols and names."""
    client, _, folder, _, _, _ = session
    path = folder / "observed.node"
    path.write_text(OBSERVED)
    uri = path.as_uri()
    client.notify(
        "textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "nodedsl", "version": 1, "text": OBSERVED}}
    )
    [diag] = client.diagnostics(uri)
    assert diag["range"]["start"] == _pos(OBSERVED, "x11") and "x11" in diag["message"]
    fixed = OBSERVED.replace("x11", "x1")
    client.notify(
        "textDocument/didChange", {"textDocument": {"uri": uri, "version": 2}, "contentChanges": [{"text": fixed}]}
    )
    assert client.diagnostics(uri) == []
    symbols = client.request("textDocument/documentSymbol", {"textDocument": {"uri": uri}})
    assert [(s["name"], s.get("detail")) for s in symbols][-1] == ("Estimator", "observer for VanDerPol")
    loc = client.request("textDocument/definition", {"textDocument": {"uri": uri}, "position": _pos(fixed, "= x1", 2)})
    assert loc["range"]["start"] == _pos(fixed, "x1 = 1.0")
    loc = client.request(
        "textDocument/definition", {"textDocument": {"uri": uri}, "position": _pos(fixed, "for Van", 4)}
    )
    assert loc["range"]["start"] == _pos(fixed, "VanDerPol {")
