"""``python -m lcm_exp.reproduce <run dir> [--out DIR] [key=value ...]``: run a recorded run again.

The run is rebuilt from the resolved config in its run.json (not from today's conf/ tree, which may have
changed), with the recorded seed, into a new dir. Before it trains, it says what differs from the recorded
run: the git commit, uncommitted changes, package versions. Afterwards it compares the loss sequences of both
metrics.jsonl files; on the same machine and CPU they are identical.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import datetime
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("lcm_exp.reproduce")

# the config groups whose schema depends on a value inside them (as chosen by conf/<group>/*.yaml)


class ReproduceError(ValueError):
    pass


def load_record(run_dir: Path) -> dict:
    path = run_dir / "run.json"
    if not path.is_file():
        raise ReproduceError(f"{path}: no run record (is {run_dir} a run dir?)")
    record = json.loads(path.read_text())
    if not record.get("config"):
        raise ReproduceError(f"{path}: holds no resolved config (the run failed before it started)")
    return record


def _redacted_keys(node, prefix: str = "") -> list[str]:
    from lcm_exp.runlog.secrets import REDACTED

    if isinstance(node, dict):
        return [k for key, v in node.items() for k in _redacted_keys(v, f"{prefix}{key}.")]
    if isinstance(node, list):
        return [k for i, v in enumerate(node) for k in _redacted_keys(v, f"{prefix}{i}.")]
    return [prefix[:-1]] if isinstance(node, str) and REDACTED in node else []  # a whole value or a part of one


def typed_config(recorded: dict, overrides: list[str]) -> DictConfig:
    """The recorded config (plus key=value overrides) as the typed tree Hydra would have composed."""
    from lcm_exp.config.errors import ConfigError
    from lcm_exp.config.typed import typed_config as to_typed

    recorded = OmegaConf.to_container(OmegaConf.merge(OmegaConf.create(recorded), OmegaConf.from_dotlist(overrides)))
    try:
        cfg = to_typed(recorded)
    except ConfigError as err:
        raise ReproduceError(f"the recorded config does not fit this code's schema: {err}") from None
    secret = _redacted_keys(recorded)
    if secret:
        raise ReproduceError(f"redacted in the record, give them again as key=value: {', '.join(secret)}")
    return cfg


def differences(record: dict, run_dir: Path) -> list[str]:
    """What differs between the recorded run's code/packages and the code that runs now."""
    from lcm_exp.runlog.record import git_state, package_versions

    notes = []
    then, now = record.get("git") or {}, git_state()
    if then.get("commit") != now.get("commit"):
        notes.append(f"git commit differs: recorded {then.get('commit')}, now {now.get('commit')}")
    diff_file = run_dir / then["diff_file"] if then.get("diff_file") else None
    recorded_diff = diff_file.read_text() if diff_file and diff_file.is_file() else ""
    if recorded_diff != (now.get("diff") or ""):
        notes.append("uncommitted changes differ from the recorded ones (recorded: "
                     f"{'git.diff in the run dir' if recorded_diff else 'none'})")  # fmt: skip
    if then.get("untracked"):
        notes.append(f"the recorded run had {len(then['untracked'])} untracked files; their contents were not "
                     "recorded and may differ now")  # fmt: skip
    current = package_versions()
    for name, version in (record.get("packages") or {}).items():
        if current.get(name) != version:
            notes.append(f"package {name}: recorded {version}, now {current.get(name)}")
    return notes


def compare_losses(original: Path, rerun: Path) -> str:
    from lcm_exp.runlog.metrics import read_metrics

    a = [(r.get("step"), r.get("loss")) for r in read_metrics(original)]
    b = [(r.get("step"), r.get("loss")) for r in read_metrics(rerun)]
    if a == b:
        return f"loss sequence identical to the original ({len(a)} logged steps)"
    for (sa, la), (sb, lb) in zip(a, b, strict=False):
        if (sa, la) != (sb, lb):
            return f"loss sequence differs from the original first at step {sa}: {la!r} vs {lb!r}"
    return f"loss sequences differ in length: original {len(a)} rows, rerun {len(b)}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lcm_exp.reproduce", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a run dir (holds run.json)")
    parser.add_argument("overrides", nargs="*", help="key=value changes on top of the recorded config")
    parser.add_argument("--out", type=Path, help="new run dir (default: <log_dir>/reproduce/<time>_<run dir name>)")
    args = parser.parse_args(argv)

    from lcm_exp.config.validate import validate_config
    from lcm_exp.task import execute

    run_dir = args.run_dir.resolve()
    record = load_record(run_dir)
    cfg = typed_config(record["config"], args.overrides)
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    out = (args.out or Path(cfg.paths.log_dir) / "reproduce" / f"{stamp}_{run_dir.name}").resolve()
    if out == run_dir:
        raise ReproduceError("--out is the recorded run dir itself: pick a new one")
    out.mkdir(parents=True, exist_ok=True)
    from lcm_exp.runlog.logs import RedactingFormatter, quiet_third_party

    handlers = [logging.StreamHandler(), logging.FileHandler(out / "reproduce.log")]
    for handler in handlers:
        handler.setFormatter(RedactingFormatter())  # the rerun's log holds no secret either
    logging.basicConfig(level=logging.INFO, handlers=handlers)
    quiet_third_party()
    cfg.paths.output_dir = str(out)
    if cfg.trainer.resume_from_checkpoint not in (None, "latest"):
        log.warning(
            "the recorded run resumed from %s; the rerun starts from scratch", cfg.trainer.resume_from_checkpoint
        )
        cfg.trainer.resume_from_checkpoint = None
    notes = differences(record, run_dir)
    for note in notes:
        log.warning("%s", note)
    (out / "reproduce.json").write_text(json.dumps(
        {"source": str(run_dir), "source_commit": (record.get("git") or {}).get("commit"), "overrides": args.overrides,
         "differences": notes}, indent=2))  # fmt: skip
    log.info("reproducing %s (seed %d) in %s", run_dir, cfg.seed, out)
    validate_config(cfg)
    execute(OmegaConf.to_object(cfg), [*record.get("overrides", []), *args.overrides], sys.argv)
    log.info("%s", compare_losses(run_dir, out))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ReproduceError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
