"""Bad input, case by case: run the pipeline on hostile or broken inputs and write the evidence.

Builds everything from scratch in a scratch folder: tiny synthetic aclImdb archives (members
with '..', absolute paths, links, a FIFO, bad names; corrupt, truncated, incomplete ones), a
tiny project (preprocess -> vectorize -> train of a 2-epoch feedforward model, by the real
stages of this repository), damaged copies of its model for ``imdb-predict``, damaged Optuna
journals, broken copies of params.yaml, and a scratch DVC project for two ``dvc repro`` at
once. Then runs each case once, for real, as one ``bash -c`` command line, and records its exit
code, stdout, stderr, the files it left (sha256 of its folder before and after) and the MLflow
store (runs, RUNNING runs and experiments, read with sqlite3), and writes them as a markdown
table with an automatic summary at the top. Group 7 stops stages in the middle (Ctrl-C, a full
disk).

    python tools/bad_input.py                              # all cases -> reports/bad_input.md
    python tools/bad_input.py --only 2 --out /tmp/bad.md   # the imdb-predict cases only

A failure case passes when it exits non-zero with exactly one stderr line, starting ``error: ``
(a params message: at most 200 characters after it), no traceback, empty stdout, nothing new,
removed or changed on disk, no new MLflow run or experiment and none RUNNING, and, when its
command puts a password in a store URL, that password nowhere in its output (it reads ``***``);
a stage stopped in the middle (group 7) may print its progress and has started its MLflow run,
which must end FAILED, never RUNNING; a control case passes when it exits 0. Two ``dvc
repro`` at once is checked on DVC's own lock message instead: its ERROR line names the busy
output, and the workspace is unchanged. Exit 1 when a case is flagged. Nothing in the
repository is written but ``--out``; the scratch folder (a fresh temporary one, removed
afterwards, unless ``--work`` names one to keep) is where the cases run.
"""

from __future__ import annotations

import argparse
import copy
import gzip
import hashlib
import io
import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
STAGES = ROOT / "stages"
MARKER = ".imdb-bad-input"  # marks a --work folder this tool may empty on its next run

PP_OUT = ("--out data/prepared/reviews.parquet --report-json reports/data.json "
          "--report-md reports/data.md")
TUNE_OUT = ("--data data/vectorized --best reports/tune/ff_random/best.json "
            "--trials reports/tune/ff_random/trials.csv --model-dir models/tuned_ff_random "
            "--history reports/train/tuned_ff_random/history.csv "
            "--train-metrics reports/train/tuned_ff_random/train.json "
            "--metrics reports/evaluate/tuned_ff_random/metrics.json "
            "--roc reports/evaluate/tuned_ff_random/roc.csv "
            "--predictions evaluation/tuned_ff_random/predictions.csv")
TRAIN_OUT = ("--data data/vectorized --model-dir models/ff2 "
             "--history reports/train/ff2/history.csv --metrics reports/train/ff2/train.json")

FF = {"family": "feedforward", "pooling": "average", "units": 4, "ngram_max": 1, "ngram_buckets": 0,
      "nb_scale": 0.0,
      "maxlen": 30, "padding": "post",
      "truncating": "pre", "embedding_dim": 8, "embedding_file": None,
      "embedding_trainable": True, "dropout": 0.1, "batch_size": 16,
      "optimizer": "adam", "learning_rate": 0.01, "clipnorm": None, "epochs": 2}
FF_SPACE = {"maxlen": {"low": 10, "high": 30, "step": 10},
            "units": {"low": 0, "high": 8, "step": 4},
            "dropout": {"low": 0.0, "high": 0.5},
            "learning_rate": {"low": 0.001, "high": 0.03, "log": True}}

PARAMS_MESSAGE_LIMIT = 200
# The password of the store URLs of groups 3 and 5, drawn for each run and given to the commands
# as $PW (so neither this file nor the report holds it): no output may show it.
SECRET = "pw" + secrets.token_hex(8)
DVC_SLEEP = 20  # seconds the first `dvc repro` holds its lock


# --- inputs --------------------------------------------------------------------------------------

def tiny_reviews(per_label: int) -> dict[str, bytes]:
    """Review files of a tiny aclImdb, by path under ``aclImdb/``."""
    words = {"pos": "great wonderful loved it", "neg": "awful boring hated it"}
    files = {}
    for split in ("train", "test"):
        for label, rating in (("pos", 8), ("neg", 2)):
            for i in range(per_label):
                text = f"{split} review {i}: {words[label]}!<br /><br />Number {i}."
                files[f"{split}/{label}/{i}_{rating}.txt"] = text.encode()
    return files


def make_archive(path: Path, files: dict[str, bytes], dirs: tuple[str, ...] = (),
                 extra: tarfile.TarInfo | None = None, extra_data: bytes = b"") -> None:
    """An aclImdb ``.tar.gz`` of ``files`` (and folder entries ``dirs``), then ``extra``."""
    with tarfile.open(path, "w:gz") as archive:
        for name in dirs:
            info = tarfile.TarInfo(f"aclImdb/{name}")
            info.type = tarfile.DIRTYPE
            archive.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(f"aclImdb/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        if extra is not None:
            extra.size = len(extra_data) if extra.isfile() else 0
            archive.addfile(extra, io.BytesIO(extra_data) if extra.isfile() else None)


def member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def hostile_members(work: Path) -> dict[str, tarfile.TarInfo]:
    """One hostile member per archive. The '..' member, read from ``$W/pp``, and the absolute
    one both point at ``$W``, where the cases check that nothing was written."""
    return {
        "dotdot": member("aclImdb/../../x.txt"),
        "absolute": member(str(work / "evil.txt")),
        "symlink": member("aclImdb/train/pos/50_9.txt", tarfile.SYMTYPE, "/etc/passwd"),
        "hardlink": member("aclImdb/train/neg/51_1.txt", tarfile.LNKTYPE, "aclImdb/README"),
        "badname": member("aclImdb/train/pos/notes.txt"),
        "badname_upper": member("aclImdb/test/neg/12_3.TXT"),
        "fifo": member("aclImdb/test/pos/fifo", tarfile.FIFOTYPE),
    }


def build_archives(work: Path) -> None:
    inp = work / "inputs"
    inp.mkdir(parents=True)
    base = tiny_reviews(6)
    make_archive(inp / "good.tar.gz", tiny_reviews(20))
    for name, info in hostile_members(work).items():
        make_archive(inp / f"{name}.tar.gz", base | {"README": b"readme"}, extra=info,
                     extra_data=b"great film")
    extras = {"README": b"r", "imdb.vocab": b"a\nb\n", "imdbEr.txt": b"0.1\n",
              "train/labeledBow.feat": b"0 1:1\n", "train/unsupBow.feat": b"0 1:1\n",
              "test/labeledBow.feat": b"0 1:1\n", "train/urls_pos.txt": b"http://x\n",
              "train/urls_neg.txt": b"http://x\n", "train/urls_unsup.txt": b"http://x\n",
              "test/urls_pos.txt": b"http://x\n", "test/urls_neg.txt": b"http://x\n",
              "train/unsup/0_0.txt": b"unlabeled review"}
    make_archive(inp / "official_extras.tar.gz", base | extras,
                 dirs=("train/", "test/", "train/pos/", "train/unsup/"))
    (inp / "corrupt.tar.gz").write_bytes(gzip.compress(b"not a tar file at all" * 30))
    (inp / "truncated.tar.gz").write_bytes((inp / "good.tar.gz").read_bytes()[:-60])
    make_archive(inp / "missing_split.tar.gz",
                 {k: v for k, v in base.items() if not k.startswith("test/neg/")})
    make_archive(inp / "empty_review.tar.gz", base | {"train/pos/99_9.txt": b"  \n"})
    make_archive(inp / "bad_utf8.tar.gz", base | {"test/neg/7_1.txt": b"bad \xff byte"})


# --- params --------------------------------------------------------------------------------------

Params = dict[str, Any]


def real_params() -> Params:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def write_params(folder: Path, data: Params) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "params.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


def tiny_project_params(proj: Path) -> Params:
    """The repository's params.yaml with one tiny feedforward model and one 2-trial study."""
    params = real_params()
    params["train"]["models"] = {"ff": copy.deepcopy(FF)}
    params["mlflow"]["tracking_uri"] = f"sqlite:///{proj}/mlflow.db"
    params["preprocess"]["val_fraction"] = 0.25
    # a tiny synthetic archive has no movies to split by (and no urls_*.txt)
    params["preprocess"]["validation"] = "random"
    params["tune"].update(storage="journal:studies/optuna.journal", n_trials=2, epochs=1,
                          subsample=None, n_startup_trials=1,
                          space={"ff": copy.deepcopy(FF_SPACE)},
                          studies={"ff_random": {"model": "ff", "sampler": "random"}})
    params["samplers"].update(model="ff", repeats=2, n_trials=2, subsample=None, epochs=1)
    params["report"]["seeds"] = []
    params["compute"] = {"workers": 1, "threads": 1}
    return params


def _smoke(params: Params) -> Params:
    params["profile"] = "smoke"
    return params["profiles"]["smoke"]


PARAM_EDITS: dict[str, tuple[str, Callable[[Params], None]]] = {
    "p_model_key": ("unknown key under a model: train.models.lstm.epochz",
                    lambda p: p["train"]["models"]["lstm"].update(epochz=3)),
    "p_profile_key": ("typo under the selected profile: profiles.smoke.train.models.lstm.epochz "
                      "(profile: smoke)",
                      lambda p: _smoke(p)["train"]["models"]["lstm"].update(epochz=3)),
    "p_family": ("unknown family value: train.models.lstm.family: lsmt",
                 lambda p: p["train"]["models"]["lstm"].update(family="lsmt")),
    "p_section": ("unknown top-level section: vectorize renamed vectorise",
                  lambda p: p.update(vectorise=p.pop("vectorize"))),
    "p_section_new": ("unknown top-level section added: trainn: {seed: 1}",
                      lambda p: p.update(trainn={"seed": 1})),
    "p_type": ("bad type: vectorize.max_features: '20000' (a string)",
               lambda p: p["vectorize"].update(max_features="20000")),
    "p_type_profile": ("bad type under the profile: profiles.smoke.train.models.gru.units: '64'",
                       lambda p: _smoke(p)["train"]["models"]["gru"].update(units="64")),
    "p_type_long": ("bad type with a 500-char value: train.models.lstm.units: 'xxx...x'",
                    lambda p: p["train"]["models"]["lstm"].update(units="x" * 500)),
    "p_enum": ("bad value of an enum: preprocess.punctuation: strp",
               lambda p: p["preprocess"].update(punctuation="strp")),
    "p_profile_name": ("unknown profile: profile: smok", lambda p: p.update(profile="smok")),
    "p_maxlen": ("size over its bound: train.models.lstm.maxlen: 100000 (drove the LSTM trainer "
                 "to 12.5 GB)", lambda p: p["train"]["models"]["lstm"].update(maxlen=100000)),
    "p_memory": ("sizes within their bounds whose training step would not fit: "
                 "train.models.lstm batch_size 4096, maxlen 3000",
                 lambda p: p["train"]["models"]["lstm"].update(batch_size=4096, maxlen=3000)),
    "p_space_maxlen": ("search space over the bound: tune.space.gru.maxlen.high: 100000",
                       lambda p: p["tune"]["space"]["gru"]["maxlen"].update(high=100000)),
    "p_inf": ("a float that is not finite: train.models.lstm.learning_rate: .inf",
              lambda p: p["train"]["models"]["lstm"].update(learning_rate=float("inf"))),
    "p_nan": ("NaN in a search range: tune.space.gru.dropout.high: .nan",
              lambda p: p["tune"]["space"]["gru"]["dropout"].update(high=float("nan"))),
}


# --- observation ---------------------------------------------------------------------------------

SKIP_NAMES = {"mlflow.db", "mlflow.db-journal", "mlflow.db-wal", "mlflow.db-shm"}


def snapshot(folder: Path, skip_dirs: tuple[str, ...] = (".git",)) -> dict[str, str]:
    """sha256 of every file under ``folder`` (and every empty folder), by relative path."""
    files: dict[str, str] = {}
    if not folder.exists():
        return files
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if any(rel == d or rel.startswith(d + "/") for d in skip_dirs) or path.name in SKIP_NAMES:
            continue
        if path.is_symlink():
            files[rel] = "symlink"
        elif path.is_file():
            files[rel] = sha256(path)
        elif path.is_dir() and not any(path.iterdir()):
            files[rel + "/"] = "dir"
    return files


UNCHANGED = "nothing new, removed or changed"


def diff(before: dict[str, str], after: dict[str, str]) -> tuple[str, bool]:
    """What changed between two snapshots, in words, and whether anything did."""
    new = [k for k in after if k not in before]
    gone = [k for k in before if k not in after]
    changed = [k for k in after if k in before and after[k] != before[k]]
    parts = [f"{label}: {', '.join(names)}"
             for label, names in (("NEW", new), ("REMOVED", gone), ("CHANGED", changed)) if names]
    return ("; ".join(parts), True) if parts else (UNCHANGED, False)


@dataclass(frozen=True)
class Store:
    """The MLflow store's counts: runs, RUNNING runs, active experiments."""
    runs: int
    running: int
    experiments: tuple[str, ...]


def mlflow_state(db: Path) -> Store | None:
    if not db.exists():
        return None
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        runs = dict(con.execute("select status, count(*) from runs group by status").fetchall())
        experiments = tuple(r[0] for r in con.execute(
            "select name from experiments where lifecycle_stage = 'active' order by name"))
    finally:
        con.close()
    return Store(sum(runs.values()), runs.get("RUNNING", 0), experiments)


def mlflow_diff(before: Store | None, after: Store | None) -> str:
    if after is None:
        return "no store"
    if before is None:
        return (f"store CREATED: {after.runs} runs, RUNNING {after.running}, experiments "
                f"{', '.join(after.experiments) or 'none'}")
    new = [e for e in after.experiments if e not in before.experiments]
    return (f"runs {before.runs}->{after.runs}, RUNNING {after.running}"
            + (f"; experiment created: {', '.join(new)}" if new else ""))


# --- running -------------------------------------------------------------------------------------

@dataclass
class Row:
    """One case as it ran."""
    group: str
    what: str
    command: str
    rc: int
    stdout: str
    stderr: str
    left: str
    disk_changed: bool
    mlflow: str
    seconds: float
    expect_ok: bool
    m_before: Store | None
    m_after: Store | None
    secret: str | None = None  # a password the command passes, which no output may show
    problems: list[str] = field(default_factory=list)
    note: str = ""  # what the verdict says when the case passes

    @property
    def verdict(self) -> str:
        if self.problems:
            return "FLAGGED: " + "; ".join(self.problems)
        return "OK" + (f" ({self.note})" if self.note else "")


def check(row: Row) -> list[str]:
    """The automatic checks of a case: what is wrong with it (nothing: it passes)."""
    if row.expect_ok:
        return [] if row.rc == 0 else [f"exit {row.rc}, expected success"]
    problems = []
    lines = row.stderr.splitlines()
    if row.rc == 0:
        problems.append("exit 0")
    if len(lines) != 1:
        problems.append(f"{len(lines)} stderr lines")
    elif not lines[0].startswith("error: "):
        problems.append("not an 'error: ' line")
    elif (row.group.startswith("4") and
          len(lines[0]) - len("error: ") > PARAMS_MESSAGE_LIMIT):
        problems.append(f"message over {PARAMS_MESSAGE_LIMIT} chars")
    if "Traceback" in row.stderr:
        problems.append("traceback")
    if row.secret and (row.secret in row.stderr or row.secret in row.stdout):
        problems.append("password shown")
    stopped = row.group.startswith("7")  # stopped in the middle: its progress is on stdout
    if row.stdout and not stopped:
        problems.append("stdout not empty")
    if row.disk_changed:
        problems.append("disk changed")
    # A stage stopped in the middle (group 7) has started its MLflow run: it must end it FAILED
    # (its record of the failure), never leave it RUNNING; its progress lines are on stdout.
    problems += store_problems(row.m_before, row.m_after, started=stopped)
    return problems


def store_problems(before: Store | None, after: Store | None, started: bool = False
                   ) -> list[str]:
    """What is wrong in the MLflow store after a failure case; ``started``: the stage had
    started (its experiment and runs may be new, none may be RUNNING)."""
    if after is None:
        return [] if before is None else ["MLflow store removed"]
    if before is None:
        return ["MLflow store created"]
    problems = []
    if after.runs != before.runs and not started:
        problems.append("MLflow runs changed")
    if after.running:
        problems.append("RUNNING run")
    if set(after.experiments) - set(before.experiments) and not started:
        problems.append("MLflow experiment created")
    return problems


class Runner:
    """Runs the cases from the scratch folder ``work`` and keeps their rows."""

    def __init__(self, work: Path):
        self.work = work
        self.rows: list[Row] = []
        self.env = {k: v for k, v in os.environ.items() if k not in (
            "MLFLOW_TRACKING_URI", "IMDB_TUNE_STORAGE", "DVC_ROOT", "VIRTUAL_ENV")}
        self.env.update({"PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                         "W": str(work), "IN": str(work / "inputs"), "S": str(STAGES),
                         "PP_OUT": PP_OUT, "TUNE_OUT": TUNE_OUT, "TRAIN_OUT": TRAIN_OUT,
                         "PW": SECRET})
        # Machine paths as the table shows them, longest first.
        names = {str(work / "inputs"): "$IN", str(work): "$W", str(STAGES): "$S",
                 str(BIN): "$BIN", str(ROOT): "$ROOT"}
        self.names = sorted(names.items(), key=lambda item: -len(item[0]))

    def shown(self, text: str) -> str:
        for path, name in self.names:
            text = text.replace(path, name)
        return text

    def sh(self, command: str, timeout: int = 600) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(["bash", "-c", command], cwd=self.work, env=self.env,
                              capture_output=True, timeout=timeout)

    def case(self, group: str, what: str, command: str, folder: str, expect_ok: bool = False,
             watch: tuple[str, ...] = (), absent: tuple[str, ...] = (),
             skip_dirs: tuple[str, ...] = (".git",), db: str = "proj/mlflow.db",
             secret: str | None = None, verdict_here: bool = True) -> Row:
        """Run ``command`` from the scratch folder; compare ``folder``, the files ``watch`` and
        the MLflow store ``db`` before and after; the paths ``absent`` must not exist after;
        ``secret`` (a password in the command) must not be in its output. ``verdict_here``:
        print the verdict now (False: the caller checks the case its own way, and prints)."""
        root, store = self.work / folder, self.work / db
        before, m_before = snapshot(root, skip_dirs), mlflow_state(store)
        watched = {w: sha256(self.work / w) for w in watch}
        start = time.monotonic()
        result = self.sh(command)
        seconds = time.monotonic() - start
        after, m_after = snapshot(root, skip_dirs), mlflow_state(store)
        left, changed = diff(before, after)
        for w, digest in watched.items():
            now = sha256(self.work / w)
            if now == digest:
                left += f"; {w} sha256 {digest[:12]}… unchanged"
            else:
                left += f"; {w} sha256 CHANGED {digest[:12]}…->{now[:12]}…"
                changed = True
        for a in absent:
            if (self.work / a).exists():
                left += f"; $W/{a} WRITTEN"
                changed = True
            else:
                left += f"; no $W/{a}"
        row = Row(group=group, what=what, command=command, rc=result.returncode,
                  stdout=result.stdout.decode("utf-8", "backslashreplace").rstrip("\n"),
                  stderr=result.stderr.decode("utf-8", "backslashreplace").rstrip("\n"),
                  left=left, disk_changed=changed, mlflow=mlflow_diff(m_before, m_after),
                  seconds=round(seconds, 1), expect_ok=expect_ok, m_before=m_before,
                  m_after=m_after, secret=secret)
        row.problems = check(row)
        self.rows.append(row)
        if verdict_here:
            print(f"[{len(self.rows)}: {row.verdict}] {what}: rc={row.rc} "
                  f"{self.shown(row.stderr)[-300:]!r}", flush=True)
        return row


# --- the cases -----------------------------------------------------------------------------------

def setup(r: Runner) -> None:
    """Inputs, the tiny project (trained), damaged journals and models, the case folders."""
    work = r.work
    build_archives(work)
    proj = work / "proj"
    write_params(proj, tiny_project_params(proj))
    for command in (
            "cd proj && python $S/preprocess.py --archive $IN/good.tar.gz $PP_OUT",
            "cd proj && python $S/vectorize.py --table data/prepared/reviews.parquet "
            "--out data/vectorized --summary reports/vectorize.json",
            "cd proj && python $S/train.py --name ff --data data/vectorized --model-dir models/ff "
            "--history reports/train/ff/history.csv --metrics reports/train/ff/train.json"):
        result = r.sh(command)
        if result.returncode != 0:
            sys.exit(f"setup failed: {command}\n{result.stdout.decode()}\n{result.stderr.decode()}")
        print("setup:", result.stdout.decode().strip()[-200:], flush=True)
    # a real Optuna journal (Optuna's own lines), then two damaged copies
    inp = work / "inputs"
    real = inp / "real.journal"
    subprocess.run([sys.executable, "-c", (
        "import optuna, sys; optuna.logging.set_verbosity(optuna.logging.WARNING);"
        "from imdb_rnn.search.study import open_storage;"
        "s = optuna.create_study(study_name='s', storage=open_storage('journal:' + sys.argv[1]));"
        "t = s.ask(); t.suggest_float('x', 0, 1); s.tell(t, 0.5)"), str(real)],
        check=True, env=r.env)
    lines = real.read_bytes().splitlines(keepends=True)
    (inp / "nonjson.journal").write_bytes(lines[0] + b"{broken\n" + b"".join(lines[1:]))
    (inp / "cut.journal").write_bytes(b"".join(lines) + lines[-1][: len(lines[-1]) // 2])
    real.unlink()
    # model folders for imdb-predict: damaged copies of the real one
    model = proj / "models" / "ff"
    for name in ("model_truncated", "model_garbage", "model_badweights"):
        shutil.copytree(model, inp / name)
    keras = (model / "model.keras").read_bytes()
    (inp / "model_truncated" / "model.keras").write_bytes(keras[: len(keras) // 2])
    (inp / "model_garbage" / "model.keras").write_bytes(b"not a zip file")
    # a well-formed zip whose weights file is cut in half
    with zipfile.ZipFile(model / "model.keras") as src, \
            zipfile.ZipFile(inp / "model_badweights" / "model.keras", "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            dst.writestr(item, data[: len(data) // 2] if item.filename.endswith(".h5") else data)
    # the folders the cases run in
    (work / "predict").mkdir()
    write_params(work / "pp", tiny_project_params(work / "pp"))
    fetch = real_params()
    fetch["fetch"].update(url="http://127.0.0.1:1/aclImdb_v1.tar.gz",
                          local_archive=str(inp / "good.tar.gz"), local_sha256="0" * 64)
    write_params(work / "fetch", fetch)
    for name, (_, edit) in PARAM_EDITS.items():
        data = real_params()
        edit(data)
        write_params(work / "params" / name, data)


def archive_cases(r: Runner) -> None:
    for name, what, absent in (
            ("dotdot", "member with '..': aclImdb/../../x.txt", ("x.txt",)),
            ("absolute", "absolute path member: $W/evil.txt", ("evil.txt",)),
            ("symlink", "symlink member: aclImdb/train/pos/50_9.txt -> /etc/passwd", ()),
            ("hardlink", "hard link member: aclImdb/train/neg/51_1.txt -> aclImdb/README", ()),
            ("badname", "name not <id>_<rating>.txt: aclImdb/train/pos/notes.txt", ()),
            ("badname_upper", "name not <id>_<rating>.txt: aclImdb/test/neg/12_3.TXT", ()),
            ("fifo", "FIFO member: aclImdb/test/pos/fifo", ())):
        r.case("1 archives", what,
               f"cd pp && python $S/preprocess.py --archive $IN/{name}.tar.gz $PP_OUT", "pp",
               watch=(f"inputs/{name}.tar.gz",), absent=absent)
    r.case("1 archives", "control, must succeed: official extras accepted (README, imdb.vocab, "
           "imdbEr.txt, *.feat, urls_*.txt, train/unsup/)",
           "cd pp && python $S/preprocess.py --archive $IN/official_extras.tar.gz $PP_OUT",
           "pp", expect_ok=True)
    r.sh("cd pp && rm -r data reports")  # the control's outputs, before the next cases


def predict_cases(r: Runner) -> None:
    r.case("2 imdb-predict", "control, must succeed: the real tiny model scores two reviews",
           "cd predict && imdb-predict ../proj/models/ff 'a great film' 'awful, boring'",
           "predict", expect_ok=True)
    r.case("2 imdb-predict", "invalid UTF-8 on stdin (line 2; line 1 is fine)",
           r"cd predict && printf 'a fine film\nbad \xff byte\nok\n' | "
           "imdb-predict ../proj/models/ff", "predict")
    r.case("2 imdb-predict", "invalid UTF-8 in an argument (argument 2)",
           r"cd predict && imdb-predict ../proj/models/ff 'fine' $'caf\xe9'", "predict")
    for text, what in (("''", "empty"), ("'  \t  '", "whitespace only"),
                       ("'<br /><br />'", "markup only")):
        r.case("2 imdb-predict", f"{what} review (argument 2)",
               f"cd predict && imdb-predict ../proj/models/ff 'a fine film' {text}", "predict")
    r.case("2 imdb-predict", "markup-only review on stdin (line 3; blank line 2 is skipped)",
           r"cd predict && printf 'a fine film\n\n<br />\n' | imdb-predict ../proj/models/ff",
           "predict")
    r.case("2 imdb-predict", "missing model folder",
           "cd predict && imdb-predict ../proj/models/nope 'a fine film'", "predict")
    r.case("2 imdb-predict", "corrupt model.keras (real file cut in half)",
           "cd predict && imdb-predict $IN/model_truncated 'a fine film'", "predict",
           watch=("inputs/model_truncated/model.keras",))
    r.case("2 imdb-predict", "corrupt model.keras (a valid zip, model.weights.h5 inside cut "
           "in half)",
           "cd predict && imdb-predict $IN/model_badweights 'a fine film'", "predict",
           watch=("inputs/model_badweights/model.keras",))
    r.case("2 imdb-predict", "corrupt model.keras (not a zip at all)",
           "cd predict && imdb-predict $IN/model_garbage 'a fine film'", "predict",
           watch=("inputs/model_garbage/model.keras",))


def storage_cases(r: Runner) -> None:
    """The real tune stage, as dvc.yaml runs it, with IMDB_TUNE_STORAGE set."""
    r.case("3 Optuna storage", "journal with a line that is not JSON (line 2 of a real "
           "Optuna journal replaced)",
           "cd proj && IMDB_TUNE_STORAGE=journal:$IN/nonjson.journal "
           "python $S/tune.py --study ff_random $TUNE_OUT", "proj",
           watch=("inputs/nonjson.journal",))
    r.case("3 Optuna storage", "journal whose last line is cut short",
           "cd proj && IMDB_TUNE_STORAGE=journal:$IN/cut.journal "
           "python $S/tune.py --study ff_random $TUNE_OUT", "proj",
           watch=("inputs/cut.journal",))
    r.case("3 Optuna storage", "same, extra worker (--worker)",
           "cd proj && IMDB_TUNE_STORAGE=journal:$IN/cut.journal "
           "python $S/tune.py --study ff_random --worker", "proj",
           watch=("inputs/cut.journal",))
    for url, what in (
            ("postgresql://u:$PW@127.0.0.1:1/x", "bare URL (postgresql://)"),
            ("postgresql+psycopg2://u:$PW@127.0.0.1:1/x",
             "URL with the driver (postgresql+psycopg2://)"),
            ("\"postgresql://u@127.0.0.1:1/x?password=$PW\"",
             "password as a query parameter (?password=)")):
        r.case("3 Optuna storage", f"unreachable RDB, {what}; the password $PW must not be "
               "shown",
               f"cd proj && IMDB_TUNE_STORAGE={url} "
               "python $S/tune.py --study ff_random $TUNE_OUT", "proj", secret=SECRET)


def params_cases(r: Runner) -> None:
    """Each in its own folder, with a broken copy of the repository's params.yaml."""
    for name, (what, _) in PARAM_EDITS.items():
        r.case("4 params", what,
               f"cd params/{name} && python $S/preprocess.py --archive $IN/good.tar.gz $PP_OUT",
               f"params/{name}")
    r.case("4 params", "same as the first, through the stage that dvc repro reruns for it "
           "(train@lstm)",
           "cd params/p_model_key && python $S/train.py --name lstm $TRAIN_OUT",
           "params/p_model_key")


def other_cases(r: Runner) -> None:
    for name, what in (("corrupt", "corrupt archive (gzip of non-tar bytes)"),
                       ("truncated", "truncated archive (last 60 bytes cut)"),
                       ("missing_split", "missing split dir (no test/neg/)"),
                       ("empty_review", "empty review file (train/pos/99_9.txt)"),
                       ("bad_utf8", "review not valid UTF-8 (test/neg/7_1.txt)")):
        r.case("5 other", what,
               f"cd pp && python $S/preprocess.py --archive $IN/{name}.tar.gz $PP_OUT", "pp",
               watch=(f"inputs/{name}.tar.gz",))
    r.case("5 other", "checksum mismatch (fetch.local_sha256 wrong)",
           "cd fetch && python $S/fetch.py --out data/raw/aclImdb.tar.gz", "fetch",
           watch=("inputs/good.tar.gz",))
    r.case("5 other", "missing input file (preprocess --archive)",
           "cd pp && python $S/preprocess.py --archive $IN/absent.tar.gz $PP_OUT", "pp")
    r.case("5 other", "missing input file (vectorize --table)",
           "cd pp && python $S/vectorize.py --table data/prepared/reviews.parquet "
           "--out data/vectorized --summary reports/vectorize.json", "pp")
    r.case("5 other", "missing params file",
           "cd predict && python $S/preprocess.py --archive $IN/good.tar.gz $PP_OUT", "predict")
    r.case("5 other", "unreachable MLflow tracking store, its URL with a user and password "
           "(train stage); the password $PW must not be shown",
           "cd proj && MLFLOW_TRACKING_URI=http://u:$PW@127.0.0.1:1 "
           "python $S/train.py --name ff $TRAIN_OUT", "proj", secret=SECRET)
    r.case("5 other", "unreachable MLflow tracking store (reference stage)",
           "cd proj && MLFLOW_TRACKING_URI=http://127.0.0.1:1 python $S/reference.py "
           "--table data/prepared/reviews.parquet --reports reports/evaluate "
           "--predictions evaluation", "proj")


def dvc_lock_case(r: Runner) -> None:
    """A second ``dvc repro`` while a first one holds the lock on the stage's output.

    DVC's message is its own, 4 lines by design (ERROR line, the PID holding the lock, a blank
    line, a hint), so the one-line check does not apply: the case passes when DVC's one ERROR
    line names the busy output, the second repro changed nothing in the workspace (DVC's own
    lock files in .dvc/tmp aside), and the first was still running meanwhile and then finished.
    """
    proj = r.work / "dvc"
    proj.mkdir()
    for command in ("git init -q", "dvc init -q"):
        subprocess.run(command.split(), cwd=proj, env=r.env, check=True)
    (proj / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"slow": {
        "cmd": f"sleep {DVC_SLEEP} && echo done > out.txt", "outs": ["out.txt"]}}}))
    tmp = proj / ".dvc" / "tmp"
    with open(r.work / "dvc_first.log", "w") as log:
        first = subprocess.Popen(["bash", "-c", "cd dvc && dvc repro"], cwd=r.work, env=r.env,
                                 stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while not list(tmp.glob("rwlock*")) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2)
        tmp_before = {p.name: p.read_bytes() for p in tmp.iterdir() if p.is_file()}
        row = r.case("6 dvc lock", f"second `dvc repro` while the first runs (stage "
                     f"`sleep {DVC_SLEEP}`). DVC's lock message is 4 lines by DVC's design, so "
                     "this case is checked for: DVC's ERROR line names the busy output and the "
                     "workspace is unchanged",
                     "cd dvc && dvc repro", "dvc", skip_dirs=(".git", ".dvc/tmp"),
                     db="dvc/mlflow.db", verdict_here=False)
        tmp_after = {p.name: p.read_bytes() for p in tmp.iterdir() if p.is_file()}
        alive = first.poll() is None
        first.wait(timeout=DVC_SLEEP + 120)
    out = proj / "out.txt"
    out_txt = out.read_text().strip() if out.exists() else None
    errors = [line for line in row.stderr.splitlines() if line.startswith("ERROR")]
    problems = []
    if row.rc == 0:
        problems.append("exit 0")
    if len(errors) != 1:
        problems.append(f"{len(errors)} ERROR lines")
    elif not ("out.txt" in errors[0] and "is busy" in errors[0]):
        problems.append("the ERROR line does not name the busy output out.txt")
    if "Traceback" in row.stderr:
        problems.append("traceback")
    if row.stdout:
        problems.append("stdout not empty")
    if row.disk_changed:
        problems.append("workspace changed")
    if not alive:
        problems.append("the first repro had ended: the lock was not tested")
    if first.returncode != 0 or out_txt != "done":
        problems.append("the first repro did not finish its stage")
    row.problems = problems
    row.note = "DVC's one ERROR line names the busy output; workspace unchanged"
    print(f"[{len(r.rows)}: {row.verdict}] two dvc repro at once: rc={row.rc} "
          f"{r.shown(row.stderr)[-300:]!r}", flush=True)
    rewritten = [f"{k}: {tmp_before.get(k, b'(absent)')!r}->{v!r}" for k, v in tmp_after.items()
                 if tmp_before.get(k) != v]
    row.left += (" outside .dvc/tmp (no out.txt, no dvc.lock); DVC's own lock files in "
                 f".dvc/tmp rewritten by the second: {'; '.join(rewritten) or 'none'}. The first "
                 f"repro (PID {first.pid}) was still running: {alive}; it then exited "
                 f"{first.returncode}, out.txt = {out_txt!r}")


# Ctrl-C as a terminal sends it: SIGINT to the process group of the command, once the stage is
# in the middle of its work (an MLflow run RUNNING in the store; for tune, also a worker process).
CTRL_C = """
import os, signal, sqlite3, subprocess, sys, time
import psutil
db, workers, command = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
stage = subprocess.Popen(command, start_new_session=True)
def running():
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.2) as c:
            return c.execute("select count(*) from runs where status = 'RUNNING'").fetchone()[0]
    except sqlite3.Error:
        return 0
def spawned():
    try:
        return sum("spawn_main" in " ".join(c.cmdline())
                   for c in psutil.Process(stage.pid).children(recursive=True))
    except psutil.Error:
        return 0
deadline = time.monotonic() + 300
while stage.poll() is None and time.monotonic() < deadline:
    if running() and spawned() >= workers:
        time.sleep(1.0)
        os.killpg(stage.pid, signal.SIGINT)
        break
    time.sleep(0.05)
sys.exit(stage.wait())
"""
STOP_TUNE_OUT = TUNE_OUT.replace("ff_random", "ff_stop")


def stop_cases(r: Runner) -> None:
    """A stage stopped in the middle: Ctrl-C (train; tune with a worker process) and a full disk
    while the model is saved. One line, exit non-zero, no output, no temporary and no folder
    left, its MLflow run ended FAILED and no Optuna trial left RUNNING (its progress on stdout
    and its experiment in the store are not counted: it had started)."""
    stop = r.work / "stop"
    params = tiny_project_params(r.work / "proj")
    params["train"]["models"]["ff_long"] = copy.deepcopy(FF) | {"epochs": 400}
    params["tune"].update(n_trials=6, epochs=200, pruner="none",
                          studies={"ff_stop": {"model": "ff_long", "sampler": "random"}},
                          space={"ff_long": copy.deepcopy(FF_SPACE)})
    params["samplers"]["model"] = "ff_long"
    params["compute"] = {"workers": 2, "threads": 1}
    write_params(stop, params)
    (stop / "data").symlink_to(r.work / "proj" / "data")
    (r.work / "inputs" / "ctrl_c.py").write_text(CTRL_C)
    journal = r.work / "journals" / "stop.journal"
    journal.parent.mkdir(exist_ok=True)
    r.env["STOP_JOURNAL"] = f"journal:{journal}"
    long_out = TRAIN_OUT.replace("ff2", "ff_long")
    r.case("7 stops", "Ctrl-C (SIGINT to the process group) in the middle of train",
           f"cd stop && python $IN/ctrl_c.py $W/proj/mlflow.db 0 "
           f"python $S/train.py --name ff_long {long_out}", "stop")
    row = r.case("7 stops", "Ctrl-C in the middle of tune, with its worker process",
                 "cd stop && IMDB_TUNE_STORAGE=$STOP_JOURNAL python $IN/ctrl_c.py "
                 f"$W/proj/mlflow.db 1 python $S/tune.py --study ff_stop {STOP_TUNE_OUT}",
                 "stop")
    trials = running_trials(journal)
    row.left += f"; Optuna trials RUNNING in $W/journals/stop.journal: {trials or 'none'}"
    if trials:
        row.problems.append("RUNNING trial")
    disk = r.work / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4k", "tmpfs", str(disk)],
                             capture_output=True)
    if mounted.returncode != 0:
        print(f"skipped the full-disk case: cannot mount a tmpfs ({mounted.stderr!r})")
        return
    try:
        r.case("7 stops", "full disk while the model is saved (outputs on a 4 KiB tmpfs)",
               "cd proj && python $S/train.py --name ff --data data/vectorized "
               "--model-dir $W/disk/models/ff --history $W/disk/history.csv "
               "--metrics $W/disk/train.json", "disk")
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def running_trials(journal: Path) -> list[str]:
    """The RUNNING trials of every study of an Optuna journal."""
    if not journal.exists():
        return []
    import optuna
    from optuna.storages.journal import JournalFileBackend

    storage = optuna.storages.JournalStorage(JournalFileBackend(str(journal)))
    return [f"{name} trial {t.number}" for name in optuna.study.get_all_study_names(storage)
            for t in optuna.load_study(study_name=name, storage=storage).get_trials(
                deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))]


GROUPS: dict[str, Callable[[Runner], None]] = {
    "1": archive_cases, "2": predict_cases, "3": storage_cases, "4": params_cases,
    "5": other_cases, "6": dvc_lock_case, "7": stop_cases,
}


# --- the report ----------------------------------------------------------------------------------

def cell(text: str, code: bool = True) -> str:
    """``text`` as one markdown table cell: a line each, as code unless ``code`` is False."""
    if text == "":
        return "(empty)"
    out = []
    for line in text.splitlines():
        if not line.strip():
            out.append("(blank line)")
            continue
        line = line.replace("|", "\\|")
        if code:
            fence, pad = ("``", " ") if "`" in line else ("`", "")
            line = f"{fence}{pad}{line}{pad}{fence}"
        out.append(line)
    return "<br>".join(out)


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout


def revision(out: Path) -> tuple[str, list[str]]:
    """The short commit, with -dirty when the tree has changes (``out`` aside), and those."""
    commit = git("rev-parse", "--short", "HEAD").strip()
    try:
        skip = out.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        skip = None
    changes = [line for line in git("status", "--porcelain").splitlines()
               if line[3:].strip() != skip]
    return (f"{commit}-dirty" if changes else commit), changes


def regenerate_command(args: argparse.Namespace) -> str:
    command = "python tools/bad_input.py"
    if args.out is not None:
        command += f" --out {args.out}"
    if args.only:
        command += f" --only {args.only}"
    return command


def report(r: Runner, args: argparse.Namespace, commit: str, changes: list[str],
           started: str, seconds: float) -> str:
    rows = r.rows
    flagged = [(i, row) for i, row in enumerate(rows, 1) if row.problems]
    summary = (f"**{len(rows)} cases, {len(flagged)} flagged by the automatic checks"
               + (":**" if flagged else ".**"))
    head = [
        "# Bad input, case by case",
        "",
        "What the pipeline does when its input is hostile or broken: each row below is one "
        "case, run for real on this commit, with the exact command line, its exit code, its "
        "stderr and stdout verbatim, what it left on disk and in the MLflow store, and the "
        "verdict of the automatic checks. A failure case should stop with exit code 1 and a "
        "single `error: ...` line that says what is wrong, and leave nothing behind. The "
        "groups: 1 hostile or unusual archive members (preprocess), 2 `imdb-predict` on bad "
        "text and damaged models, 3 corrupt Optuna journals and unreachable study storages "
        "(tune), 4 typos, bad values, sizes over their bounds and non-finite numbers in "
        "params.yaml, 5 other bad inputs (corrupt archives, wrong checksum, missing files, "
        "unreachable MLflow), 6 two `dvc repro` at "
        "once, 7 a stage stopped in the middle (Ctrl-C in train and in tune with its worker "
        "process, a full disk while the model is saved: here the stage's MLflow run, started "
        "before the stop, must end FAILED, never RUNNING).",
        "",
        summary,
    ]
    if flagged:
        head.append("")
        head += [f"- case {i} ({row.group}: {r.shown(row.what)}): {', '.join(row.problems)}"
                 for i, row in flagged]
    dirty = (" Uncommitted changes at the time (tested as they were): "
             + ", ".join(f"`{line.strip()}`" for line in changes) + ".") if changes else ""
    head += [
        "",
        f"Commit `{commit}`, {started}; took {seconds / 60:.1f} min ({seconds:.0f} s). "
        f"Regenerate: `{regenerate_command(args)}` (from the repository root, with the "
        f"project's venv active).{dirty}",
        "",
        "## How the cases are checked",
        "",
        f"A failure case passes when it exits non-zero; its stderr is exactly one line, "
        f"starting `error: ` (in group 4, at most {PARAMS_MESSAGE_LIMIT} characters after it); "
        "there is no `Traceback`; stdout is empty; nothing is new, removed or changed in its "
        "folder or in the input files it names; and the MLflow store has no new run, no new "
        "experiment and no RUNNING run. Where the command puts a password in a store URL "
        "(`$PW`, a password drawn for each run, in groups 3 and 5), that password must "
        "appear in neither stderr nor "
        "stdout: the error line shows `***` in its place. A control case passes when it exits "
        "0. The case of group 6 (two `dvc repro` at once) gets DVC's own lock message, 4 lines "
        "by DVC's design, so it is checked instead for: DVC's ERROR line names the busy output "
        "and the workspace is unchanged (while the first `dvc repro` holds the lock, and then "
        "finishes). The stages of group 7 are stopped after they started: they may have "
        "printed their progress on stdout, and their MLflow run (and tune's experiment) may be "
        "new, but no run may be left RUNNING (each ends FAILED), nor any Optuna trial; the "
        "other checks apply as above.",
        "",
        "Every case starts from one scratch folder, rebuilt from scratch on each run: tiny "
        "synthetic inputs, and a tiny project trained by the real stages. Commands are run "
        "with `bash -c` from `$W`, with the venv's bin folder first on PATH and neither "
        "MLFLOW_TRACKING_URI nor IMDB_TUNE_STORAGE set unless the command sets it. Paths are "
        "shown relative to these variables:",
        "",
        "- `W`: the scratch folder (`--work`; by default a fresh temporary folder, removed "
        "afterwards); `IN=$W/inputs`: the archives, Optuna journals and damaged model folders",
        "- `S`: the repository's `stages/` folder; `BIN`: the venv's bin folder; `ROOT`: the "
        "repository; `PW`: a password drawn for each run (groups 3 and 5), never shown",
        f"- `PP_OUT='{PP_OUT}'`",
        f"- `TUNE_OUT='{TUNE_OUT}'`",
        f"- `TRAIN_OUT='{TRAIN_OUT}'`",
        "- `$W/proj`: the tiny project (the repository's params.yaml with one tiny "
        "feedforward model `ff`, study `ff_random`, MLflow store `sqlite:///$W/proj/mlflow.db`), "
        "set up by the real stages preprocess -> vectorize -> train@ff; `$W/pp`: a project "
        "with params.yaml only, for the archive cases; `$W/predict`: an empty folder; "
        "`$W/params/CASE`: a broken copy of the repository's params.yaml each; `$W/fetch`: "
        "params.yaml with a wrong `fetch.local_sha256`; `$W/dvc`: a one-stage DVC project; "
        "`$W/stop`: the tiny project with a 400-epoch model `ff_long` and a study `ff_stop` of "
        "6 trials of 200 epochs on 2 worker processes (long enough to be stopped in the "
        "middle), its data a link to `$W/proj/data`; `STOP_JOURNAL=journal:$W/journals/"
        "stop.journal`: that study's storage; `$IN/ctrl_c.py`: starts the command in its own "
        "process group and, once its MLflow run is RUNNING (and, for tune, its worker process "
        "has started), sends SIGINT to the group as a terminal's Ctrl-C does; `$W/disk`: a "
        "4 KiB tmpfs.",
        "- *Left on disk*: the sha256 of every file in the folder the command changes into, "
        "before and after, plus the sha256 of the input files the case names and the paths "
        "that must not appear. *MLflow*: runs in `$W/proj/mlflow.db` before->after, and "
        "RUNNING runs after (sqlite3, read-only). The length after a one-line stderr is that "
        "of the real line. *s*: seconds the command took.",
        "",
    ]
    table = ["## Cases", "",
             "| # | case | command | exit | stderr (verbatim) | stdout | left on disk | MLflow "
             "| s | verdict |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for i, row in enumerate(rows, 1):
        lines = row.stderr.splitlines()
        length = f" ({len(lines[0])} chars)" if len(lines) == 1 else f" ({len(lines)} lines)"
        table.append(
            f"| {i} | {row.group}: {r.shown(row.what).replace('|', '/')} | "
            f"{cell(row.command)} | {row.rc} | "
            f"{cell(r.shown(row.stderr))}{length if row.stderr else ''} | "
            f"{cell(r.shown(row.stdout))} | {cell(r.shown(row.left), False)} | {row.mlflow} | "
            f"{row.seconds} | {row.verdict} |")
    return "\n".join(head + table) + "\n"


# --- main ----------------------------------------------------------------------------------------

DEFAULT_OUT = ROOT / "reports" / "bad_input.md"


def scratch_folder(work: Path | None) -> Path:
    """``work`` emptied (only if absent, empty or left by this tool), or a fresh temporary one."""
    if work is None:
        return Path(tempfile.mkdtemp(prefix="imdb-bad-input-")).resolve()
    work = work.resolve()
    if work.exists() and any(work.iterdir()):
        if not (work / MARKER).exists():
            sys.exit(f"error: {work}: not empty and not a scratch folder of this tool; "
                     "name an empty or new folder")
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    (work / MARKER).touch()
    return work


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path,
                        help="scratch folder, kept afterwards (default: a fresh temporary one)")
    parser.add_argument("--out", type=Path,
                        help="the markdown report (default: reports/bad_input.md)")
    parser.add_argument("--only", help="run only the groups whose number starts with this (1..7)")
    args = parser.parse_args()
    out = (args.out or DEFAULT_OUT).resolve()
    start = time.monotonic()
    started = time.strftime("%Y-%m-%d %H:%M %Z")
    commit, changes = revision(out)
    work = scratch_folder(args.work)
    print(f"scratch folder {work}", flush=True)
    r = Runner(work)
    try:
        setup(r)
        for group, run in GROUPS.items():
            if args.only is None or group.startswith(args.only):
                run(r)
        seconds = time.monotonic() - start
        out.write_text(report(r, args, commit, changes, started, seconds))
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    flagged = sum(1 for row in r.rows if row.problems)
    print(f"wrote {out}: {len(r.rows)} cases, {flagged} flagged, in {seconds:.0f} s")
    sys.exit(1 if flagged else 0)


if __name__ == "__main__":
    main()
