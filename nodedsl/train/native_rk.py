"""C source of the native rollout: a fixed-step explicit Runge-Kutta method over a batch of windows, and its
discrete adjoint (the exact reverse of the computed steps, as reverse-mode autograd of the eager loop).

``nd_forward`` rolls every window of the batch out (per sample: the steps of its grid, per step the stages,
each stage's time and linearly interpolated input from the step tables), writes the states at the grid
times and, when asked, the input of every stage (what the adjoint needs: the memory-light choice, one
state per stage, no intermediate of the field). ``nd_backward`` walks the steps back: per stage, in
reverse, the field's VJP (recomputing the field's forward from the stored stage input) pulls the stage's
cotangent back to the step's state and the parameters, the Runge-Kutta coefficients route it to the
earlier stages. The stage updates are written in the same order as the eager solver's
(``y = y + k_j * (a_j h)``), so float64 results agree to rounding.

Example:
    >>> from nodedsl.solvers import make_solver
    >>> src = rollout_source(make_solver("heun", step=0.1), autonomous=True)
    >>> "nd_forward" in src and "nd_backward" in src
    True
"""

from __future__ import annotations

__all__ = ["rollout_source"]


def _c(v: float) -> str:
    return f"((real){float(v)!r})"


def _stage_lines(stages, indent: str) -> list[str]:
    """Per stage ``s``: ``y = x + sum_j k_j (a_sj h)``; its stage-time column is ``NODE[s]``."""
    out = []
    for s, (_, row) in enumerate(stages):
        out.append(f"{indent}{{ real *y = Y_at({s}); for (int q = 0; q < NX; q++) {{ real v = x[q];")
        for j, a in row:
            out.append(f"{indent}  v = v + k[{j}][q] * ({_c(a)} * h);")
        out.append(f"{indent}  y[q] = v; }}")
        out.append(f"{indent}  STAGE_INPUT({s}); nd_field(tt, y, us, P, PT, k[{s}]); }}")
    return out


_HEAD = """
#define NX {nx}
#define NU {nu}
#define NUA (NU > 0 ? NU : 1)
#define NPAR {npar}
#define NS {ns}
#define NN {nn}
static const int NODE[NS] = {{{nodes}}};
/* stage time and interpolated input of stage s of step i of sample b */
#define STAGE_INPUT(s) \\
  real tt; {{ const int c = i * NN + NODE[s]; tt = AUTONOMOUS ? ts[c] : t0[b] + ts[c]; \\
    const int64_t kk = ks[c]; const real w = ws[c]; const real *u0 = u + ((int64_t)b * K1 + kk) * NU; \\
    for (int q = 0; q < NU; q++) us[q] = u0[q] + w * (u0[NU + q] - u0[q]); }}
#define AUTONOMOUS {autonomous}
"""

_FORWARD = """
int nd_forward(int B, int S, int K1, const real *x0, const real *t0, const real *u, const real *P,
               const real *hs, const real *ts, const int64_t *ks, const real *ws, const unsigned char *marks,
               real *states, real *Ystore) {{
  real *PT = (real *)malloc(sizeof(real) * NPAR);
  if (!PT) return 1;
  nd_prep(P, PT);
  for (int b = 0; b < B; b++) {{
    real x[NX], k[NS][NX], ybuf[NS][NX], us[NUA];
    for (int q = 0; q < NX; q++) x[q] = x0[b * NX + q];
    real *out = states + (int64_t)b * K1 * NX;
    for (int q = 0; q < NX; q++) out[q] = x[q];
    int o = 1;
    for (int i = 0; i < S; i++) {{
      const real h = hs[i];
#define Y_at(s) (Ystore ? Ystore + (((int64_t)b * S + i) * NS + s) * NX : ybuf[s])
{stages}
#undef Y_at
      for (int q = 0; q < NX; q++) {{ real v = x[q];
{update}
        x[q] = v; }}
      if (marks[i]) {{ for (int q = 0; q < NX; q++) out[o * NX + q] = x[q]; o++; }}
    }}
  }}
  free(PT);
  return 0;
}}
"""

_BACKWARD = """
int nd_backward(int B, int S, int K1, const real *t0, const real *u, const real *P, const real *hs,
                const real *ts, const int64_t *ks, const real *ws, const unsigned char *marks, const real *Ystore,
                const real *gstates, real *gx0, real *gP) {{
  real *PT = (real *)malloc(sizeof(real) * NPAR);
  if (!PT) return 1;
  nd_prep(P, PT);
  for (int b = 0; b < B; b++) {{
    real lam[NX], bk[NS][NX], bx[NX], by[NX], us[NUA];
    for (int q = 0; q < NX; q++) lam[q] = 0;
    const real *gs = gstates + (int64_t)b * K1 * NX;
    int o = K1 - 1;
    for (int i = S - 1; i >= 0; i--) {{
      const real h = hs[i];
      if (marks[i]) {{ for (int q = 0; q < NX; q++) lam[q] += gs[o * NX + q]; o--; }}
      for (int s = 0; s < NS; s++) for (int q = 0; q < NX; q++) bk[s][q] = 0;
      for (int q = 0; q < NX; q++) {{ bx[q] = lam[q];
{bupdate}
      }}
      for (int s = NS - 1; s >= 0; s--) {{
        const real *y = Ystore + (((int64_t)b * S + i) * NS + s) * NX;
        STAGE_INPUT(s);
        for (int q = 0; q < NX; q++) by[q] = 0;
        nd_field_vjp(tt, y, us, P, PT, bk[s], by, gP);
        for (int q = 0; q < NX; q++) bx[q] += by[q];
        switch (s) {{
{brows}
        }}
      }}
      for (int q = 0; q < NX; q++) lam[q] = bx[q];
    }}
    for (int q = 0; q < NX; q++) gx0[b * NX + q] = lam[q] + gs[q];
  }}
  free(PT);
  return 0;
}}
"""


def rollout_source(solver, autonomous: bool, n_state: int = 1, n_input: int = 0, n_param: int = 1) -> str:
    """The C rollout (``nd_forward``, ``nd_backward``) of an explicit Runge-Kutta ``solver`` (its
    ``_stages``: per stage the node index and the row ``[(j, a_sj)]``, its ``_b``: ``[(j, b_j)]``); it calls
    ``nd_prep``, ``nd_field`` and ``nd_field_vjp`` (:func:`nodedsl.compiler.cgen.field_code`)."""
    stages, b = solver._stages, solver._b
    nodes = ", ".join(str(int(node)) for node, _ in stages)
    head = _HEAD.format(
        nx=n_state,
        nu=n_input,
        npar=n_param,
        ns=len(stages),
        nn=len(solver.nodes),
        nodes=nodes,
        autonomous=int(bool(autonomous)),
    )
    stage_code = _stage_lines(stages, "      ")
    update = "\n".join(f"        v = v + k[{j}][q] * ({_c(bj)} * h);" for j, bj in b)
    bupdate = "\n".join(f"        bk[{j}][q] += ({_c(bj)} * h) * lam[q];" for j, bj in b)
    brows = []
    for s, (_, row) in enumerate(stages):
        if row:
            body = " ".join(f"bk[{j}][q] += ({_c(a)} * h) * by[q];" for j, a in row)
            brows.append(f"        case {s}: for (int q = 0; q < NX; q++) {{ {body} }} break;")
    fwd = _FORWARD.format(stages="\n".join(stage_code), update=update)
    bwd = _BACKWARD.format(bupdate=bupdate, brows="\n".join(brows) or "        default: break;")
    return head + fwd + bwd
