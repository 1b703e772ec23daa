"""What is ours in a backup's time, measured without containers (issue 11, "Benchmarks").

    python bench/backup_local.py DIR [--mailboxes 200] [--messages 100000] [--profile] [--keep]

Builds under ``DIR`` (on the disk to measure; removed afterwards unless ``--keep``) a tree like
bench/backup.py's (its generator: messages of 1-4 KiB, each distinct), spread as a mail store
holds it: per mailbox INBOX (``cur`` and ``new``), two folders (``Sent``, ``B&AOE-o c&AOE-o`` =
"Báo cáo"), each with ``cur/new/tmp``. Then, in one process, each of govmail-backup's own phases
(src/govmail/backup.py) next to a **bound measured in the same run on the same tree**:

- staging, first run (``stage_mailboxes`` into an empty mirror) against a bare loop of
  ``os.makedirs`` + ``os.link`` of the same files (the kernel's floor for a hard-link mirror);
- manifest, first run (``build_manifest`` with an empty :class:`DigestCache`) against a bare
  loop that reads and SHA-256s every message;
- 1 % new messages, then staging again (``stage_mailboxes`` on the existing mirror) and the
  manifest with the previous run's digests, the digest cache's JSON written and read back as
  ``run`` does, against a bare ``os.scandir`` + ``os.stat`` walk of the mirror (what any change
  detection needs) and the bare read + SHA-256 of the new files only.

Timings are ``time.perf_counter`` seconds, warm cache for figure and bound alike (the tree was
just written). ``--profile`` adds cProfile's top functions of each of our phases (slower; the
phases' own times are then not figures). Prints one JSON document (``{"tree": ..., "figures":
[{"name", "seconds", "bound", "bound_seconds", "ratio", ...}], "load": [1, 5, 15 min]}``).
Raises SystemExit with a one-line message when ``DIR`` exists and is not empty.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import importlib.util
import io
import json
import os
import pstats
import re
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from govmail import backup

DOMAIN = "bench.example"
FOLDERS = ("Sent", "B&AOE-o c&AOE-o")
CREATED = datetime(2026, 11, 30, tzinfo=UTC)  # one time in every manifest, so they compare equal


def _generator() -> str:
    """bench/backup.py's message generator (one fact in one place), read without importing its lab helpers."""
    text = (Path(__file__).resolve().parent / "backup.py").read_text(encoding="utf-8")
    start = text.index('_GENERATOR = r"""') + len('_GENERATOR = r"""')
    return text[start : text.index('"""', start)]


def generate(vmail: Path, mailboxes: int, messages: int, first: int = 0) -> None:
    """Write ``messages`` messages over ``mailboxes`` mailboxes ``u1..uN``; spread them over folders.

    Of each mailbox's new messages: 1 in 5 goes to ``Sent``, 1 in 7 to "Báo cáo", 1 in 10 of the
    rest stays in ``new`` (unseen, no flags), the others in ``cur``.
    """
    share, extra = divmod(messages, mailboxes)
    specs = [f"u{i + 1}:{share + (i < extra)}" for i in range(mailboxes) if share + (i < extra)]
    before = {spec.split(":")[0]: set(os.listdir(vmail / DOMAIN / spec.split(":")[0] / "Maildir" / "cur"))
              if (vmail / DOMAIN / spec.split(":")[0] / "Maildir" / "cur").is_dir() else set()
              for spec in specs}  # fmt: skip
    subprocess.run([sys.executable, "-", str(vmail), DOMAIN, str(first), *specs], input=_generator(), text=True,
                   check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    for local, old in before.items():
        maildir = vmail / DOMAIN / local / "Maildir"
        for folder in FOLDERS:
            for sub in backup.MAILDIR_SUBDIRS:
                (maildir / folder / sub).mkdir(parents=True, exist_ok=True)
        for sub in ("new", "tmp"):
            (maildir / sub).mkdir(exist_ok=True)
        (maildir / "dovecot-uidlist").write_text("3 V1 N1\n")
        (maildir / "dovecot.index").write_bytes(b"\0" * 4096)  # left out by staging
        for n, name in enumerate(sorted(set(os.listdir(maildir / "cur")) - old)):
            source = maildir / "cur" / name
            if n % 5 == 0:
                source.rename(maildir / FOLDERS[0] / "cur" / name)
            elif n % 7 == 0:
                source.rename(maildir / FOLDERS[1] / "cur" / name)
            elif n % 10 == 0:
                source.rename(maildir / "new" / name.partition(":")[0])


def bare_link(vmail: Path, target: Path) -> int:
    """Bound for staging: every directory made and every file hard-linked, nothing else; files linked."""
    linked = 0
    for current, _dirs, files in os.walk(vmail):
        out = target / os.path.relpath(current, vmail)
        out.mkdir(parents=True, exist_ok=True)
        for name in files:
            os.link(os.path.join(current, name), os.path.join(out, name))
            linked += 1
    return linked


def bare_hash(root: Path, names: set[str] | None = None) -> int:
    """Bound for the manifest's reads: SHA-256 of every message file (only ``names`` if given); files read."""
    count = 0
    for current, _dirs, files in os.walk(root):
        if os.path.basename(current) not in ("cur", "new"):
            continue
        for name in files:
            if names is not None and name not in names:
                continue
            digest = hashlib.sha256()
            descriptor = os.open(os.path.join(current, name), os.O_RDONLY)
            while chunk := os.read(descriptor, 1 << 16):  # the fastest bare form measured (bench/README.md)
                digest.update(chunk)
            os.close(descriptor)
            digest.hexdigest()
            count += 1
    return count


def bare_stat(root: Path) -> int:
    """Bound for change detection: os.scandir of every directory and os.stat of every file; files stat'ed."""
    count = 0
    pending = [str(root)]
    while pending:
        with os.scandir(pending.pop()) as listing:
            for entry in listing:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
                else:
                    entry.stat(follow_symlinks=False)
                    count += 1
    return count


def _timed(function, *args, profile: bool = False, **kwargs):  # type: ignore[no-untyped-def]
    profiler = cProfile.Profile() if profile else None
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    result = function(*args, **kwargs)
    if profiler:
        profiler.disable()
    seconds = time.perf_counter() - started
    top = ""
    if profiler:
        stream = io.StringIO()
        pstats.Stats(profiler, stream=stream).sort_stats("tottime").print_stats(14)
        top = stream.getvalue()
    return seconds, result, top


REPOSITORY = {"repository": "rest:https://bench.example/h/"}  # what _save_digests/_load_digests read of a Config


def save_digests(module, path: Path, digests) -> None:  # type: ignore[no-untyped-def]
    """``module._save_digests`` writing to ``path`` (its DIGEST_CACHE) instead of /var/cache."""
    module.CACHE_DIR, module.DIGEST_CACHE = str(path.parent), str(path)
    module._save_digests(REPOSITORY, "0" * 64, digests)


def load_digests(module, path: Path):  # type: ignore[no-untyped-def]
    """``module._load_digests`` reading ``path``: the previous run's DigestCache."""
    module.CACHE_DIR, module.DIGEST_CACHE = str(path.parent), str(path)
    return module._load_digests(REPOSITORY)[1]


def baseline(revision: str):  # type: ignore[no-untyped-def]
    """src/govmail/backup.py as it was at git ``revision``, loaded as a module of the govmail package."""
    source = subprocess.run(["git", "show", f"{revision}:src/govmail/backup.py"], capture_output=True, text=True,
                            check=True, cwd=Path(__file__).resolve().parents[1]).stdout  # fmt: skip
    spec = importlib.util.spec_from_loader(f"govmail.backup_{revision}", loader=None)
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "govmail"
    exec(compile(source, f"backup.py@{revision}", "exec"), module.__dict__)  # our own file at a git revision
    return module


def bare_list(*roots: Path) -> int:
    """Bound for the incremental staging: os.scandir of every directory of ``roots``, no stat; entries seen."""
    count = 0
    pending = [str(root) for root in roots]
    while pending:
        with os.scandir(pending.pop()) as listing:
            for entry in listing:
                count += 1
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
    return count


def _added(root: Path, first: int) -> set[str]:
    """Names of the message files the generator wrote with an index >= ``first`` (the 1 % new)."""
    return {name for _c, _d, names in os.walk(root) for name in names
            if (index := re.match(r"\d+\.M(\d+)P", name)) and int(index.group(1)) >= first}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path)
    parser.add_argument("--mailboxes", type=int, default=200)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--baseline", metavar="REV", help="also measure src/govmail/backup.py of git REV (same run)")
    parser.add_argument("--rounds", type=int, default=3, help="each figure and bound: the fastest of N rounds")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--keep", action="store_true", help="leave the tree in DIR (a later run reuses it)")
    args = parser.parse_args(argv)
    root: Path = args.dir
    vmail, bound_dir = root / "vmail", root / "bound"
    if not vmail.is_dir():
        if root.exists() and any(root.iterdir()):
            raise SystemExit(f"backup_local: {root} exists and holds no tree of ours: name an empty directory")
        vmail.mkdir(parents=True)
        generate(vmail, args.mailboxes, args.messages)
    implementations = [("ours", backup)]
    if args.baseline:
        implementations.insert(0, (f"baseline {args.baseline}", baseline(args.baseline)))
    stagings = {label: root / f"staging-{n}" for n, (label, _m) in enumerate(implementations)}
    caches = {label: root / f"digests-{n}.json" for n, (label, _m) in enumerate(implementations)}
    figures: dict[str, dict] = {}
    profiles: dict[str, str] = {}
    manifests: dict[str, set[str]] = {}

    def figure(name, seconds, bound_name, bound, **details):  # type: ignore[no-untyped-def]
        """Record one round of a figure; the figure keeps the fastest round of ours and of its bound."""
        row = figures.setdefault(name, {"name": name, "bound": bound_name, "rounds": []})
        row["rounds"].append([round(seconds, 3), round(bound, 3)])
        row["seconds"] = min(r[0] for r in row["rounds"])
        row["bound_seconds"] = min(r[1] for r in row["rounds"])
        row["ratio"] = round(row["seconds"] / row["bound_seconds"], 2)
        row.update(details)

    def stage(label, module, phase):  # type: ignore[no-untyped-def]
        seconds, linked, profiles[f"{label}: {phase}"] = _timed(
            module.stage_mailboxes, vmail, stagings[label] / "vmail", profile=args.profile
        )
        return seconds, {"files": linked}

    def manifest(label, module, phase):  # type: ignore[no-untyped-def]
        loaded, digests, _ = (_timed(load_digests, module, caches[label]) if caches[label].exists()
                              else (0.0, module.DigestCache(), ""))  # fmt: skip
        seconds, result, profiles[f"{label}: {phase}"] = _timed(module.build_manifest, stagings[label], host="h",
                                                                digests=digests, created=CREATED,
                                                                profile=args.profile)  # fmt: skip
        saved, _, _ = _timed(save_digests, module, caches[label], digests)
        manifests.setdefault(f"{phase}, round {round_ + 1}", set()).add(json.dumps(result, sort_keys=True))
        details = {"messages": result["totals"]["messages"], "reads": digests.reads, "reused": digests.hits,
                   "cache_bytes": caches[label].stat().st_size}  # fmt: skip
        return seconds, loaded + saved, details

    new = max(1, args.messages // 100)
    round_ = 0
    for round_ in range(args.rounds):
        for leftover in (*stagings.values(), *caches.values(), bound_dir):
            shutil.rmtree(leftover, ignore_errors=True) if leftover.is_dir() else leftover.unlink(missing_ok=True)
        order = implementations if round_ % 2 == 0 else implementations[::-1]  # neither always goes first

        # first backup: staging into an empty mirror, then the manifest reading every message
        bound, count, _ = _timed(bare_link, vmail, bound_dir)
        shutil.rmtree(bound_dir)
        for label, module in order:
            seconds, details = stage(label, module, "staging, first")
            figure(f"{label}: staging, first", seconds, "bare os.makedirs + os.link loop", bound,
                   bound_files=count, **details)  # fmt: skip
        bound, count, _ = _timed(bare_hash, vmail)
        for label, module in order:
            seconds, cache_io, details = manifest(label, module, "manifest, first")
            figure(f"{label}: manifest, first", seconds, "bare read + SHA-256 of every message", bound,
                   bound_files=count, **details)  # fmt: skip
            figure(f"{label}: digest cache written, first", cache_io, "the manifest, first", seconds)

        # 1 % new mail, then the incremental's staging and manifest (the previous run's digests)
        generate(vmail, args.mailboxes, new, first=args.messages)
        mirror = stagings[implementations[0][0]] / "vmail"
        listed, entries, _ = _timed(bare_list, vmail, mirror)
        walk, _stats, _ = _timed(bare_stat, mirror)
        hashed_seconds, hashed, _ = _timed(bare_hash, mirror, _added(mirror, args.messages))
        for label, module in order:
            staged, details = stage(label, module, "staging, incremental")
            figure(f"{label}: staging, incremental", staged, "bare os.scandir of the mail store and the mirror",
                   listed, bound_entries=entries, **details)  # fmt: skip
        for label, module in order:
            seconds, cache_io, details = manifest(label, module, "manifest, incremental")
            figure(f"{label}: manifest, incremental", seconds,
                   "bare os.scandir + os.stat walk of the mirror, read + SHA-256 of the new messages",
                   walk + hashed_seconds, bound_walk_seconds=round(walk, 3),
                   bound_hash_seconds=round(hashed_seconds, 3), bound_hashed=hashed, **details)  # fmt: skip
            figure(f"{label}: digest cache read + written, incremental", cache_io, "the manifest, incremental",
                   seconds)  # fmt: skip
            total = figures[f"{label}: staging, incremental"]["rounds"][-1][0] + seconds + cache_io
            figure(f"{label}: all of ours in the incremental (staging, cache, manifest)", total,
                   "bare scandir of both trees + stat walk + read of the new messages",
                   listed + walk + hashed_seconds)  # fmt: skip
        for current, _dirs, names in os.walk(vmail):  # the 1 % goes: every round starts from the same tree
            for name in names:
                index = re.match(r"\d+\.M(\d+)P", name)
                if index and int(index.group(1)) >= args.messages:
                    os.unlink(os.path.join(current, name))

    files = sum(len(f) for _c, _d, f in os.walk(vmail))
    size = sum(e.stat().st_size for c, _d, _f in os.walk(vmail) for e in os.scandir(c) if e.is_file())
    print(json.dumps({"tree": {"mailboxes": args.mailboxes, "messages": args.messages, "new_messages": new,
                               "files": files, "bytes": size, "dir": str(root)},
                      "rounds": args.rounds, "load": [round(x, 2) for x in os.getloadavg()],
                      "same_manifests": {phase: len(texts) == 1 for phase, texts in manifests.items()},
                      "figures": list(figures.values())}, indent=1))  # fmt: skip
    if args.profile:
        for name, text in profiles.items():
            print(f"\n===== {name}\n{text}", file=sys.stderr)
    for leftover in (*stagings.values(), *caches.values()):
        shutil.rmtree(leftover, ignore_errors=True) if leftover.is_dir() else leftover.unlink(missing_ok=True)
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
