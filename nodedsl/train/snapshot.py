"""Capturing and restoring a trainer's full state: checkpoints to resume from, and rollbacks after a
non-finite step (a mixin of the trainer in :mod:`nodedsl.train.loop`; its attributes are set there)."""

from __future__ import annotations

import torch

from ..core.diagnostics import Diagnostic, NodeDslError
from ..io.checkpoint import FORMAT, check_compatible, check_training_state, save_checkpoint
from .setup import clone_state

__all__ = ["Snapshots"]


class Snapshots:
    """``capture``/``restore`` of everything a resumed run needs; ``restore_params`` for rollbacks."""

    def capture(self) -> dict:
        model_state = clone_state(self.model.state_dict())
        return {
            "format": FORMAT,
            "model": getattr(self.model, "name", ""),
            "source_hash": self.source_hash,
            "run_id": getattr(self, "run_id", ""),
            "param_shapes": {k: list(v.shape) for k, v in model_state.items()},  # = param_shapes(model)
            "model_state": model_state,
            # window_init = encoder(...): the GRU is trained with the model (its optimizer state is in
            # "optimizer"), so a resumed run or a rollback needs its weights too
            "encoder_state": clone_state(self.encoder.state_dict()) if self.encoder is not None else None,
            "epoch": self.epoch,
            "optimizer": clone_state(self.opt.state_dict()) if self.opt else None,
            "x0_train": self.train.x0.detach().clone() if self.train.learned else None,
            "x0_val": self.val.x0.detach().clone() if self.val is not None and self.val.learned else None,
            "x0_val_optimizer": clone_state(self.val_opt.state_dict()) if self.val_opt else None,
            "solver_state": [p.detach().clone() for p in self.solver_params],
            "remainder_optimizer": clone_state(self.rem_opt.state_dict()) if self.rem_opt else None,
            "al": self.al.state_dict() if self.al else None,
            "rng": self.gen.get_state(),
            "lr_scale": self.lr_scale,
            "rollbacks": self.rollbacks,
            "streak": self.streak,
            "steps": self.steps,
            # a shallow copy: an entry is never changed once its epoch is recorded, and copying every
            # entry at every epoch made long runs quadratic (49 ms an epoch at 20,000 epochs)
            "history": list(self.history),
            "best": clone_state(self.best),
            "bad_epochs": self.bad_epochs,
            "wall_time": self.wall,
            "config": self.cfg.model_dump(mode="json"),
        }

    def restore_params(self, snap: dict) -> None:
        """Parameters and optimizer states only (the rollback after a non-finite loss)."""
        with torch.no_grad():
            self.model.load_state_dict(snap["model_state"])
            if self.encoder is not None and snap.get("encoder_state") is not None:
                self.encoder.load_state_dict(snap["encoder_state"])
            if self.train.learned and snap.get("x0_train") is not None:
                self.train.x0.copy_(snap["x0_train"])
            if self.val is not None and self.val.learned and snap.get("x0_val") is not None:
                self.val.x0.copy_(snap["x0_val"])
            for p, v in zip(self.solver_params, snap.get("solver_state") or []):
                p.copy_(v)
        if self.opt and snap.get("optimizer") is not None:
            self.opt.load_state_dict(clone_state(snap["optimizer"]))
        if self.val_opt and snap.get("x0_val_optimizer") is not None:
            self.val_opt.load_state_dict(clone_state(snap["x0_val_optimizer"]))
        if self.rem_opt and snap.get("remainder_optimizer") is not None:
            self.rem_opt.load_state_dict(clone_state(snap["remainder_optimizer"]))

    def restore(self, snap: dict) -> None:
        """Everything: resuming a run."""
        check_compatible(snap, self.model, self.checkpoint_path or "checkpoint")
        for key, learned, shoot in (
            ("x0_train", self.train.learned, self.train),
            ("x0_val", self.val is not None and self.val.learned, self.val),
        ):
            saved = snap.get(key)
            if learned and (saved is None or saved.shape != shoot.x0.shape):
                raise NodeDslError(
                    [
                        Diagnostic(
                            "checkpoint-mismatch",
                            "the checkpoint was written for different "
                            "training data (window count differs); train without --resume",
                        )
                    ]
                )
        check_training_state(snap, self.checkpoint_path or "checkpoint")
        try:
            self.restore_params(snap)
        except (ValueError, KeyError, RuntimeError, TypeError, AttributeError) as err:
            raise NodeDslError(
                [
                    Diagnostic(
                        "checkpoint-mismatch",
                        "the checkpoint's training state does not fit "
                        f"this training setup ({err}); train without --resume",
                    )
                ]
            ) from None
        self.epoch = int(snap["epoch"])
        if self.al and snap.get("al"):
            self.al.load_state_dict(snap["al"])
        self.gen.set_state(snap["rng"])
        self.lr_scale = float(snap.get("lr_scale", 1.0))
        self.rollbacks = int(snap.get("rollbacks", 0))
        self.streak = int(snap.get("streak", 0))
        self.steps = int(snap.get("steps", 0))
        self.history = list(snap.get("history", []))
        self.best = snap.get("best") or {"epoch": None, "val": None, "state": None}
        self.bad_epochs = int(snap.get("bad_epochs", 0))
        self.wall = float(snap.get("wall_time", 0.0))

    def save(self, snap: dict) -> None:
        if self.checkpoint_path is not None:
            save_checkpoint(self.checkpoint_path, snap)
