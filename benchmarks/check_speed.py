"""How fast `check` is where people type: the command as a whole process, and the language server's
re-check after a one-line edit of a 1,000-sub-model file.

Usage: python benchmarks/check_speed.py [--runs 3] [--edits 5]

1. `nodedsl check EXAMPLE` for every example, each a fresh process (interpreter start and imports
   included), runs interleaved over the examples, median wall time. Target: < 0.5 s each.
2. A file `big.node` with 1,001 sub-models (the chain of benchmarks/compile_scaling.py: 501 masses,
   500 springs, 500 couplings) importing its components from `parts.node` and the `mechanics` stdlib:
   a) in process, `nodedsl.lsp.analysis.Analyzer`: the first analysis, then one-line edits (a spring's
      `k` changes): the front end (parse of the edited file, imports reused, check) and the full
      re-check (plus the structural proofs, cached per unchanged model);
   b) the real `nodedsl lsp` process: `didChange` sent -> the front end's `publishDiagnostics`
      received, and -> the second publication, after the structural proofs (which the server runs
      once typing pauses for 0.3 s, in a worker thread).
   Target: < 0.3 s for the re-check.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from compile_scaling import COMPONENTS, COUPLING

NODEDSL = [sys.executable, "-c", "from nodedsl.cli.entry import main; main()"]  # the console script
# An installed package has its bytecode compiled (pip compiles .pyc at install): let the children
# write and reuse it, as a user's processes do, whatever this shell's PYTHONDONTWRITEBYTECODE says.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def whole_process(runs: int) -> None:
    examples = sorted((ROOT / "examples").glob("*.node"))
    times: dict[str, list[float]] = {p.name: [] for p in examples}
    subprocess.run([*NODEDSL, "check", *map(str, examples)], capture_output=True, cwd=ROOT, env=ENV)  # .pyc
    for _ in range(runs):
        for p in examples:
            t0 = time.perf_counter()
            r = subprocess.run([*NODEDSL, "check", str(p)], capture_output=True, cwd=ROOT, env=ENV)
            times[p.name].append(time.perf_counter() - t0)
            assert r.returncode == 0, r.stderr
    print(f"nodedsl check, whole process, median of {runs} (s):")
    for name, ts in times.items():
        print(f"  {name:<22} {statistics.median(ts):6.3f}   (min {min(ts):.3f})")


def big_files(folder: Path, n: int = 501) -> tuple[Path, str]:
    (folder / "parts.node").write_text(COMPONENTS)
    lines = ['import "parts.node"', 'import "mechanics" as mech', "", "model Chain : port_hamiltonian {"]
    lines += [f"    sub m{i} = Mass(m = {1.0 + 0.01 * i:g}, q = {0.1 * (i % 7):g})" for i in range(n)]
    lines += [f"    sub s{i} = Spring(k = {1.0 + 0.02 * i:g})" for i in range(n - 1)]
    lines += [f"    couple [m{i}.right, m{i + 1}.left, s{i}.ends] C = {COUPLING}" for i in range(n - 1)]
    lines += ["}", ""]
    path = folder / "big.node"
    text = "\n".join(lines)
    path.write_text(text)
    return path, text


def edit(text: str, k: int) -> str:
    """A one-line edit: spring s250's stiffness changes."""
    return text.replace("    sub s250 = Spring(k = 6)", f"    sub s250 = Spring(k = {6 + 0.001 * (k + 1):g})")


def in_process(path: Path, text: str, edits: int) -> None:
    from nodedsl.lsp.analysis import Analyzer

    an = Analyzer()
    t0 = time.perf_counter()
    res = an.analyze(str(path), text)
    cold = time.perf_counter() - t0
    assert not res.diagnostics, res.diagnostics[:3]
    front, full = [], []
    for k in range(edits):
        changed = edit(text, k)
        assert changed != text
        t0 = time.perf_counter()
        res = an.analyze(str(path), changed, proofs=False)
        front.append(time.perf_counter() - t0)
        assert not res.diagnostics
        t0 = time.perf_counter()
        an.analyze(str(path), edit(text, k + edits))
        full.append(time.perf_counter() - t0)
    n = sum(1 for line in text.splitlines() if line.strip().startswith("sub "))
    print(f"language server analysis of a {n}-sub-model file, in process (s):")
    print(f"  first analysis (parse all, check, prove)      {cold:6.3f}")
    print(f"  one-line edit: front end (parse + check)      {statistics.median(front):6.3f}   (min {min(front):.3f})")
    print(f"  one-line edit: with the structural proofs     {statistics.median(full):6.3f}   (min {min(full):.3f})")


def _frame(msg: dict) -> bytes:
    body = json.dumps(msg).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def _read(out) -> dict:
    length = 0
    while True:
        line = out.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return json.loads(out.read(length))


def _wait_diagnostics(out, uri: str) -> list:
    while True:
        msg = _read(out)
        if msg.get("method") == "textDocument/publishDiagnostics" and msg["params"]["uri"] == uri:
            return msg["params"]["diagnostics"]


def server_round_trip(path: Path, text: str, edits: int) -> None:
    proc = subprocess.Popen([*NODEDSL, "lsp"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT, env=ENV)
    send = lambda m: (proc.stdin.write(_frame(m)), proc.stdin.flush())  # noqa: E731
    t0 = time.perf_counter()
    send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"processId": None, "capabilities": {}}})
    while "id" not in _read(proc.stdout):
        pass
    started = time.perf_counter() - t0
    send({"jsonrpc": "2.0", "method": "initialized", "params": {}})
    uri = path.as_uri()
    doc = {"uri": uri, "languageId": "nodedsl", "version": 1, "text": text}
    t0 = time.perf_counter()
    send({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": doc}})
    assert _wait_diagnostics(proc.stdout, uri) == []
    opened = time.perf_counter() - t0
    assert _wait_diagnostics(proc.stdout, uri) == []  # the proofs' publication
    proved = time.perf_counter() - t0
    times, proofs = [], []
    for k in range(edits):
        change = {"textDocument": {"uri": uri, "version": k + 2}, "contentChanges": [{"text": edit(text, k)}]}
        t0 = time.perf_counter()
        send({"jsonrpc": "2.0", "method": "textDocument/didChange", "params": change})
        assert _wait_diagnostics(proc.stdout, uri) == []
        times.append(time.perf_counter() - t0)
        assert _wait_diagnostics(proc.stdout, uri) == []
        proofs.append(time.perf_counter() - t0)
    send({"jsonrpc": "2.0", "id": 2, "method": "shutdown", "params": None})
    send({"jsonrpc": "2.0", "method": "exit", "params": None})
    proc.wait(timeout=60)
    print("the nodedsl lsp process (s):")
    print(f"  start + initialize                            {started:6.3f}")
    print(f"  didOpen -> front-end diagnostics              {opened:6.3f}")
    print(f"  didOpen -> proofs' diagnostics                {proved:6.3f}")
    print(f"  didChange -> front-end diagnostics (one line) {statistics.median(times):6.3f}   (min {min(times):.3f})")
    print(f"  didChange -> proofs' diagnostics (0.3 s wait) {statistics.median(proofs):6.3f}   (min {min(proofs):.3f})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--edits", type=int, default=5)
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    print(f"load average at start: {os.getloadavg()[0]:.1f}")
    whole_process(args.runs)
    with tempfile.TemporaryDirectory() as tmp:
        path, text = big_files(Path(tmp))
        in_process(path, text, args.edits)
        server_round_trip(path, text, args.edits)
    print(f"load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
