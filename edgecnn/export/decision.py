"""The int8 decision: candidates are values, one pure function chooses, and both the file
writer and the verdict read the one `Decision` it returns.

    candidates = [Candidate("placement", proto, ...), Candidate("int8", ...), ...]
    decision = choose(candidates, Policy(blocks="auto", max_drop=1.0))
    decision.written      -> is there a model.int8.onnx at all
    decision.chosen       -> the candidate whose graph it holds
    decision.verdict()    -> export.json's int8.verdict; decision.line() -> one line

A candidate is an int8 graph (or the fp32 graph itself, `proto` None: "no block pays") with
what was measured of it: accuracy on held-out data (the guard's evaluation) and latency
against fp32 in each CPU runtime (the export's timer). Where it comes from is its `name`:
  - `int8`          every block int8 (the target's scheme);
  - `placement`     the per-block search's choice: blocks slower in int8 stay float;
  - `calibrate:M`   another calibration method (the guard's step 2);
  - `float_layers`  the most noise-sensitive layers kept float (the guard's step 3);
  - `qat`           quantization-aware fine-tuning (the guard's step 4);
  - `float`         no block in int8.
They come in the order they were made: the guard's order, cheapest and fewest float layers
first.

The rule, in one place:
  1. Accuracy: the first candidate that passes the guard; when none does, the most accurate
     (earliest among equals), and the decision says it failed.
  2. Whether the file is written: `--int8-blocks all` writes it whatever its speed (the user
     asked for every block in int8; the verdict says where it is slower). `auto` writes it
     only when it holds int8 arithmetic that some runtime timed faster than fp32 beyond the
     noise band (`Policy.noise`): an int8 file that is fp32 in disguise, or slower
     everywhere, is not written, and the reason says why.
  3. The verdict: worth deploying when the file is written, within the accuracy budget, and
     at least `Policy.worth` times faster than fp32 in some runtime. Per runtime, `deploy`
     names the file to ship there, and agrees with the verdict: model.int8.onnx where the
     verdict is "worth deploying" and that runtime's speed-up reaches `Policy.worth`,
     model.onnx everywhere else (the reason names the runtimes that get model.onnx).
  4. Where it was timed: `Policy.timed_on` (`timed_on()`, this machine) goes into the verdict,
     and a recipe for another kind of machine (cpu-arm exported on x86_64) says that its
     speed-ups are this machine's, not the target's, and to run `edgecnn tune` on the device.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Blocks = Literal["all", "auto"]


@dataclass(frozen=True)
class Accuracy:
    """A candidate on held-out data; every field None when nothing could be measured."""

    top1: float | None = None  # percent, int8
    drop: float | None = None  # points, fp32 - int8
    agreement: float | None = None  # percent of images where int8 and fp32 agree on top-1
    passed: bool | None = None  # within the budget; None: not measured


@dataclass(frozen=True)
class Latency:
    """Median ms at batch 1 of fp32 and of the candidate, per runtime, timed side by side."""

    threads: int
    fp32_ms: dict[str, float]
    int8_ms: dict[str, float]
    how: str = ""

    @property
    def speedups(self) -> dict[str, float]:
        return {k: self.fp32_ms[k] / self.int8_ms[k] for k in self.int8_ms if k in self.fp32_ms}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"threads": self.threads, "batch": 1, "timing": self.how}
        for k, s in self.speedups.items():
            out[k] = {"fp32_ms": round(self.fp32_ms[k], 4), "int8_ms": round(self.int8_ms[k], 4),
                      "speedup": round(s, 3)}
        return out


@dataclass(frozen=True)
class Candidate:
    name: str  # see the module doc
    proto: Any  # onnx.ModelProto; None: the fp32 graph itself (no block in int8)
    float_layers: tuple[str, ...] = ()  # nodes kept float (blocks and guard layers)
    method: str = ""  # calibration method
    accuracy: Accuracy = field(default_factory=Accuracy)
    latency: Latency | None = None  # None: not timed here (TensorRT: at engine build)
    note: str = ""

    @property
    def is_int8(self) -> bool:
        return self.proto is not None


@dataclass(frozen=True)
class Policy:
    blocks: Blocks = "auto"
    criterion: Literal["accuracy", "agreement"] = "accuracy"
    max_drop: float = 1.0
    min_agreement: float = 99.0
    noise: float = 1.03  # speed-ups within [1/noise, noise] are not told apart from 1.0
    worth: float = 1.1  # int8 is worth deploying from this speed-up
    untimed: str = ""  # why latency is not measured here (TensorRT targets), if it is not
    timed_on: dict[str, Any] | None = None  # where the speed-ups were timed: timed_on()


# The architecture each recipe's name stands for (one without a match: any)
_TARGET_ARCH = (("cpu-arm", "aarch64"), ("jetson", "aarch64"), ("cpu-x86", "x86_64"))


def timed_on(target: str, threads: int) -> dict[str, Any]:
    """This machine as the verdict's timings were taken on it (edgecnn.host: CPU model,
    architecture, ISA flags; no hostname), and whether it is the kind `target` is for."""
    from edgecnn.host import device, int8_saturates

    here = device()
    arch = next((a for prefix, a in _TARGET_ARCH if target.startswith(prefix)), None)
    vnni = "vnni" in target and int8_saturates(here["arch"], set(here["isa"]))
    return {"cpu_model": here["cpu_model"], "arch": here["arch"], "isa": here["isa"],
            "cores": here["cores"], "threads": threads, "target": target,
            "target_arch": arch,
            "is_target": (arch is None or arch == here["arch"]) and not vnni}


def _where(t: dict[str, Any] | None) -> str:
    """The verdict's note on where it was timed."""
    if t is None:
        return ""
    if t["is_target"]:
        return f"; timed on this machine ({t['cpu_model']}, {t['threads']} thread(s))"
    return (f"; timed on this {t['arch']} machine ({t['cpu_model']}), not the {t['target']} "
            f"target: run `edgecnn tune` on the device")


@dataclass(frozen=True)
class Decision:
    written: bool
    chosen: Candidate | None  # the candidate model.int8.onnx holds; None when not written
    reason: str  # why this file, or why none
    accurate: bool | None  # the chosen candidate passed the guard (None: not measured)
    worth_deploying: bool
    deploy: dict[str, str]  # runtime -> the file to ship there
    verdict_reason: str
    candidates: tuple[Candidate, ...] = ()
    slower: tuple[str, ...] = ()  # runtimes where int8 is slower than fp32 beyond noise
    timed_on: dict[str, Any] | None = None  # where the speed-ups were timed (Policy.timed_on)

    def verdict(self) -> dict[str, Any]:
        speedups = ({k: round(v, 3) for k, v in self.chosen.latency.speedups.items()}
                    if self.chosen is not None and self.chosen.latency is not None else {})
        best = max(speedups, key=speedups.get) if speedups else None
        drop = self.chosen.accuracy.drop if self.chosen is not None else None
        return {"written": self.written, "worth_deploying": self.worth_deploying,
                "word": self.word, "speedup": speedups.get(best) if best else None,
                "runtime": best,
                "speedups": speedups, "deploy": self.deploy,
                "top1_change": None if drop is None else round(-drop, 3),
                "reason": self.verdict_reason, "timed_on": self.timed_on}

    @property
    def word(self) -> str:
        """The verdict in words. Faster without measured accuracy (random calibration, an
        untrained model) is not called worth deploying: only its speed is known."""
        if not self.worth_deploying:
            return "not worth it"
        return "worth deploying" if self.accurate else "faster, accuracy not measured"

    def line(self) -> str:
        """One line for the export's output and `edgecnn bench`."""
        if not self.written:
            return f"int8 not written: {self.reason}"
        return f"int8 verdict: {self.word} ({self.verdict_reason})"


def choose(candidates: list[Candidate] | tuple[Candidate, ...], policy: Policy) -> Decision:
    """The one rule (module doc). `candidates` in the order they were made."""
    cands = tuple(candidates)
    if not cands:
        raise ValueError("choose() needs at least one candidate")
    pick, accurate = accuracy_pick(cands, policy)
    if not pick.is_int8:
        return _not_written(cands, pick, accurate, pick.note or
                            "no block ran faster in int8 than in fp32 on this machine")
    speedups = pick.latency.speedups if pick.latency is not None else {}
    each = ", ".join(f"{k} {v:.2f}x" for k, v in speedups.items())
    if policy.blocks == "auto" and speedups and all(s * (2 - policy.noise) < 1.0 for s in
                                                   speedups.values()):
        return _not_written(cands, pick, accurate,
                            f"int8 is not faster than fp32 here ({each}, noise band "
                            f"{policy.noise - 1:.0%}): deploy model.onnx"
                            + _where(policy.timed_on), policy.timed_on)
    slow = tuple(k for k, v in speedups.items() if v * policy.noise < 1.0)
    fast = any(v >= policy.worth for v in speedups.values())
    worth = bool(fast and accurate is not False)
    # Per runtime what the verdict says: int8 only where it is worth deploying there
    deploy = {k: "model.int8.onnx" if worth and v >= policy.worth else "model.onnx"
              for k, v in speedups.items()}
    fp32_there = [k for k, f in deploy.items() if f == "model.onnx"]
    if not speedups:
        why = policy.untimed or "speed not measured"
    elif not fast:
        why = f"int8 vs fp32: {each} (below {policy.worth:g}x): deploy model.onnx"
    elif accurate is False:
        why = _accuracy_failure(pick, policy)
    else:
        acc = pick.accuracy
        why = f"int8 vs fp32: {each}" + (
            f", top-1 {-acc.drop:+.2f} points" if acc.drop is not None else
            f", top-1 agreement {acc.agreement:.2f}%" if acc.agreement is not None else
            ", calibrated on random inputs") + (
            f"; in {', '.join(fp32_there)} deploy model.onnx (below {policy.worth:g}x)"
            if fp32_there else "")
    if speedups:
        why += _where(policy.timed_on)
    chosen_why = {"int8": "every block int8", "placement": "blocks slower in int8 kept float",
                  "qat": "quantization-aware fine-tuning"}.get(
        pick.name.split(":")[0], f"the accuracy guard's {pick.name} step")
    return Decision(True, pick, chosen_why, accurate,
                    worth_deploying=worth, deploy=deploy, verdict_reason=why,
                    candidates=cands, slower=slow, timed_on=policy.timed_on)


def accuracy_pick(cands: tuple[Candidate, ...] | list[Candidate], policy: Policy
                  ) -> tuple[Candidate, bool | None]:
    """The first candidate within the budget, else the most accurate, earliest among equals;
    and whether it passed (None: not measured). The one whose latency `choose` reads: the
    export times this candidate only (timing every candidate would triple its cost)."""
    measured = [c for c in cands if c.accuracy.passed is not None]
    if not measured:  # no held-out data: the first candidate, accuracy unknown
        return cands[0], None
    for c in measured:
        if c.accuracy.passed:
            return c, True

    def score(c: Candidate) -> float:
        value = c.accuracy.agreement if policy.criterion == "agreement" else c.accuracy.top1
        return -1.0 if value is None else value

    best = max(range(len(measured)), key=lambda i: (score(measured[i]), -i))
    return measured[best], False


def _accuracy_failure(pick: Candidate, policy: Policy) -> str:
    if pick.accuracy.drop is not None:
        return (f"int8 loses {pick.accuracy.drop:.2f} top-1 points (budget {policy.max_drop:g})"
                ": deploy model.onnx")
    return "int8 fails the accuracy guard (agreement with fp32): deploy model.onnx"


def _not_written(cands: tuple[Candidate, ...], pick: Candidate, accurate: bool | None,
                 reason: str, timed: dict[str, Any] | None = None) -> Decision:
    return Decision(False, None, reason, accurate, worth_deploying=False, deploy={},
                    verdict_reason=reason, candidates=cands, timed_on=timed)


# --------------------------------------------------------------------------------------------
# `edgecnn tune`: the same artifact, measured on the device it will run on.

@dataclass(frozen=True)
class TuneChoice:
    # "int8" (every block, as exported) | "placement" | "merged" (int8, sibling convolutions
    # merged: export/merge.py) | "float" (model.onnx)
    candidate: str
    runtime: str
    ms: float
    reason: str
    inconclusive: bool = False


def choose_tuned(ms: dict[tuple[str, str], float], default_runtime: str, noise: float,
                 max_noise: float) -> TuneChoice:
    """The candidate and runtime to deploy on the device that measured `ms` ((candidate,
    runtime) -> p50 ms, timed side by side): every block int8 in the default runtime (the
    target's scheme, as exported) unless another option is faster than it beyond the noise
    band `noise` measured in the same run (the same file timed twice). When nothing wins
    beyond the band and the band itself is wider than `max_noise`, the run could not have
    told a real difference of that size: the default, marked inconclusive. A win larger
    than even a wide band is a win.
    int8 must pay for what it costs in accuracy: when the int8 option chosen is not faster
    than fp32 (model.onnx) beyond the band, fp32 is deployed, as export's verdict would say
    (never slower than every block int8 beyond the band either).
    A rewritten int8 graph (placement, merged) must also beat the int8 file in its own
    runtime beyond the band, or that file is the candidate: a rewrite that only ties it
    costs accuracy (placement) or file size (merged) for a coin toss."""
    base = ms[("int8", default_runtime)]
    best = min(ms, key=ms.get)
    plain = ("int8", best[1])
    if best[0] in ("placement", "merged") and plain in ms and ms[best] >= ms[plain] * (1 - noise):
        best = plain
    if best != ("int8", default_runtime) and ms[best] < base * (1.0 - noise):
        what = {"int8": "every block int8", "placement": "the per-block placement",
                "merged": "every block int8, sibling convolutions merged",
                "float": "fp32 (model.onnx)"}[best[0]]
        beside = (f"; every block int8 in {best[1]} {ms[plain]:.3f} ms "
                  f"({ms[plain] / ms[best]:.2f}x)" if best[0] in ("placement", "merged")
                  and best[1] != default_runtime and plain in ms else "")
        choice = TuneChoice(best[0], best[1], ms[best],
                            f"{what} in {best[1]}: {ms[best]:.3f} ms against every block int8 "
                            f"in {default_runtime} {base:.3f} ms ({base / ms[best]:.2f}x{beside}"
                            f", beyond the noise band {noise:.1%})")
    elif noise > max_noise:
        return TuneChoice("int8", default_runtime, base,
                          f"inconclusive: the same file timed {noise:.1%} apart (more than "
                          f"{max_noise:.0%}) and nothing won by more; kept every block int8 in "
                          f"{default_runtime}", True)
    else:
        choice = TuneChoice("int8", default_runtime, base,
                            f"every block int8 in {default_runtime}: {base:.3f} ms; nothing "
                            f"faster beyond the noise band {noise:.1%}")
    floats = [k for k in ms if k[0] == "float"]
    if choice.candidate == "float" or not floats:
        return choice
    fp32 = min(floats, key=ms.get)
    if choice.ms < ms[fp32] * (1.0 - noise):
        return choice
    return TuneChoice("float", fp32[1], ms[fp32],
                      f"fp32 (model.onnx) in {fp32[1]}: {ms[fp32]:.3f} ms; int8's best "
                      f"({choice.candidate} in {choice.runtime}, {choice.ms:.3f} ms) is not "
                      f"faster beyond the noise band {noise:.1%}, so it would cost accuracy "
                      "for nothing")
