"""The changed-numerics check: compare_runs on hand-made report folders, and the environment and
params changes numerics_rerun makes (not a real rerun)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

import compare_runs
import numerics_rerun

BASE_SEEDS = {"cnn": [0.889, 0.887, 0.891], "gru": [0.878, 0.876, 0.881],
              "simple_rnn": [0.86, 0.84, 0.85]}
BASE_VERDICTS = {"cnn": "no real difference: no trial beat the baseline on validation (tuned = baseline)",
                 "gru": "no real difference"}


def write_run(folder: Path, seeds: dict[str, list[float]] = BASE_SEEDS, champion: str = "cnn",
              verdicts: dict[str, str] = BASE_VERDICTS, vectors_md5: str = "aaa") -> Path:
    """A workspace with the report files compare_runs reads, in the pipeline's formats."""
    reports = folder / "reports"
    (reports / "seeds").mkdir(parents=True)
    for model, accuracies in seeds.items():
        runs = [{"seed": seed, "test_accuracy": accuracy, "val_accuracy": accuracy + 0.01}
                for seed, accuracy in zip((42, 1, 2), accuracies)]
        (reports / "seeds" / f"{model}.json").write_text(json.dumps(
            {"model": model, "family": model, "seeds": [42, 1, 2], "runs": runs}))
        (reports / "evaluate" / model).mkdir(parents=True)
        (reports / "evaluate" / model / "metrics.json").write_text(
            json.dumps({"model": model, "accuracy": accuracies[0]}))
    (reports / "registry.json").write_text(json.dumps(
        {"model": champion, "family": champion, "val_accuracy": 0.9, "test_accuracy": 0.88}))
    with (reports / "tuning.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["study", "baseline", "tuned", "verdict"])
        for study, verdict in verdicts.items():
            writer.writerow([study, study, f"tuned_{study}", verdict])
    (reports / "leaderboard.csv").write_text("model,test_accuracy\n" + "".join(
        f"{m},{a[0]}\n" for m, a in sorted(seeds.items(), key=lambda kv: -kv[1][0])))
    (folder / "dvc.lock").write_text(
        "schema: '2.0'\nstages:\n  embed:\n    outs:\n"
        f"    - path: data/embeddings/word2vec.txt\n      md5: {vectors_md5}\n")
    return folder


def compared(tmp_path: Path, **changes) -> compare_runs.Comparison:
    a = compare_runs.load_run(write_run(tmp_path / "a"), "default")
    b = compare_runs.load_run(write_run(tmp_path / "b", **changes), "changed")
    return compare_runs.compare(a, b)


def test_equal_runs_raise_no_flag(tmp_path: Path):
    comparison = compared(tmp_path)
    assert comparison.problems == []
    assert all(row.within and row.difference == 0 for row in comparison.rows)
    page = compare_runs.render(comparison)
    assert "**The conclusions hold**" in page and "**no**" not in page
    assert "md5: aaa (default), aaa (changed): the same" in page


def test_a_family_moved_beyond_the_tolerance_is_flagged_and_one_within_its_spread_is_not(
        tmp_path: Path):
    # cnn (sd 0.2 points) moves 1 point: beyond max(0.5, 2 SE); simple_rnn (sd 1 point) moves
    # 0.9 points: within 2 SE = 2 * sqrt(2 * 0.01^2 / 3) = 1.63 points.
    seeds = BASE_SEEDS | {"cnn": [0.899, 0.897, 0.901], "simple_rnn": [0.869, 0.849, 0.859]}
    comparison = compared(tmp_path, seeds=seeds)
    rows = {row.model: row for row in comparison.rows}
    assert not rows["cnn"].within and rows["cnn"].difference == pytest.approx(0.01)
    assert rows["simple_rnn"].within and rows["simple_rnn"].tolerance == pytest.approx(0.01633,
                                                                                      abs=1e-4)
    assert rows["gru"].within and rows["gru"].tolerance == pytest.approx(0.005)  # the floor
    assert comparison.problems == ["cnn: seed mean moved +1.00 points, beyond 0.50"]
    assert "| cnn | cnn | 88.90% ± 0.20 (3) | 89.90% ± 0.20 (3) | +1.00 |" in (
        compare_runs.render(comparison))


def test_a_champion_change_and_a_verdict_change_are_reported(tmp_path: Path):
    comparison = compared(tmp_path, champion="gru",
                          verdicts=BASE_VERDICTS | {"gru": "tuning helped"})
    assert comparison.problems == [
        "champion: cnn -> gru",
        "tuning verdict of gru: 'no real difference' -> 'tuning helped'"]
    page = compare_runs.render(comparison)
    assert "**2 conclusion(s) differ:**" in page and "| family | cnn | gru |" in page


def test_verdicts_with_the_same_answer_and_another_reason_agree(tmp_path: Path):
    """The baseline winning its study and a tuned configuration within seed noise of it both
    answer "no real difference"; only another answer is a changed conclusion."""
    comparison = compared(tmp_path, verdicts=BASE_VERDICTS | {
        "cnn": "no real difference: within seed noise"})
    assert comparison.problems == []
    assert "| cnn | no real difference: no trial beat the baseline on validation (tuned = " \
        "baseline) | no real difference: within seed noise | yes |" in (
            compare_runs.render(comparison))
    hurt = compared(tmp_path / "hurt", verdicts=BASE_VERDICTS | {"cnn": "tuning hurt"})
    assert hurt.problems == ["tuning verdict of cnn: 'no real difference: no trial beat the "
                             "baseline on validation (tuned = baseline)' -> 'tuning hurt'"]


def test_separated_families_that_swap_places_are_flagged_close_ones_are_not(tmp_path: Path):
    # gru overtakes cnn by a point (sd 0.2-0.25): flagged. lstm and bidirectional swap 0.05 and
    # 0.17 points apart with sd 0.25-0.35: inside their spread on both sides, not checked.
    a_seeds = {"cnn": [0.889, 0.887, 0.891], "gru": [0.878, 0.876, 0.881],
               "lstm": [0.8685, 0.8645, 0.8715], "bidirectional": [0.8675, 0.8655, 0.8705]}
    b_seeds = {"cnn": [0.879, 0.877, 0.881], "gru": [0.888, 0.886, 0.891],
               "lstm": [0.8675, 0.8635, 0.8705], "bidirectional": [0.8685, 0.8665, 0.8715]}
    a = compare_runs.load_run(write_run(tmp_path / "a", seeds=a_seeds), "A")
    b = compare_runs.load_run(write_run(tmp_path / "b", seeds=b_seeds), "B")
    checked, reordered = compare_runs.reordered_pairs(a.seeds, b.seeds)
    assert reordered == [("cnn", "gru")]
    assert ("lstm", "bidirectional") not in checked and len(checked) == 5
    assert compare_runs.ranking(b.seeds) == ["gru", "cnn", "bidirectional", "lstm"]
    assert "ranking: cnn and gru change places" in compare_runs.compare(a, b).problems


def test_a_missing_report_file_is_one_line_naming_it(tmp_path: Path):
    folder = write_run(tmp_path / "a")
    (folder / "reports" / "registry.json").unlink()
    with pytest.raises(SystemExit, match=r"^error: .*registry\.json: not found$"):
        compare_runs.load_run(folder, "A")
    (folder / "reports" / "seeds" / "cnn.json").write_text('{"runs": [{"seed": 1}]}')
    with pytest.raises(SystemExit, match=r"cnn\.json: expected runs with a test_accuracy each"):
        compare_runs.read_seeds(folder / "reports")


def test_the_command_writes_the_report_and_check_fails_on_a_difference(tmp_path: Path, capsys):
    a = write_run(tmp_path / "a")
    b = write_run(tmp_path / "b", champion="gru")
    out = tmp_path / "numerics.md"
    assert compare_runs.main([str(a), str(b / "reports"), "--out", str(out)]) == 0
    assert compare_runs.main([str(a), str(b), "--check", "--labels", "x", "y",
                              "--out", str(out)]) == 1
    assert out.read_text().startswith("# Conclusions of two runs: x against y")
    assert "1 conclusion(s) differ" in capsys.readouterr().err
    assert compare_runs.main([str(a), str(a), "--check", "--out", str(out)]) == 0


# --- numerics_rerun: what it changes, not a real rerun -------------------------------------

PINNED_PARAMS = {"profile": "full", "profiles": {"smoke": {}},
                 "embed": {"dim": 64, "blas_coretype": "Prescott"}}


def test_changed_numerics_set_onednn_and_openblas_and_override_the_embed_pin():
    env, settings = numerics_rerun.numerics_changes("changed", PINNED_PARAMS, True,
                                                    "Sandybridge", "AVX2")
    assert env == {"ONEDNN_MAX_CPU_ISA": "AVX2", "OPENBLAS_CORETYPE": "Sandybridge"}
    assert settings == [(["embed", "blas_coretype"], "Sandybridge")]
    assert numerics_rerun.numerics_changes("default", PINNED_PARAMS, True, "Sandybridge",
                                           "AVX2") == ({}, [])
    # A commit whose embed stage pins nothing takes the kernel from the environment alone.
    env, settings = numerics_rerun.numerics_changes("changed", {"embed": {"dim": 64}}, False,
                                                    "Haswell", "AVX2")
    assert env["OPENBLAS_CORETYPE"] == "Haswell" and settings == []


def test_a_pin_that_params_cannot_override_and_bad_names_are_refused(tmp_path: Path):
    assert not numerics_rerun.embed_pins_kernel(tmp_path)
    module = tmp_path / numerics_rerun.EMBED_MODULE
    module.parent.mkdir(parents=True)
    module.write_text('CORETYPE = getattr(params, "blas_coretype", "Prescott")\n')
    assert numerics_rerun.embed_pins_kernel(tmp_path)
    with pytest.raises(SystemExit, match="embed.blas_coretype is not in params.yaml"):
        numerics_rerun.numerics_changes("changed", {"embed": {"dim": 64}}, True,
                                        "Sandybridge", "AVX2")
    with pytest.raises(SystemExit, match=r"--onednn-isa 'AVX2; rm': expected a kernel name"):
        numerics_rerun.numerics_changes("changed", PINNED_PARAMS, True, "Sandybridge",
                                        "AVX2; rm")


def test_the_profile_and_outside_paths_become_settings():
    assert numerics_rerun.profile_setting("smoke", PINNED_PARAMS) == [(["profile"], "smoke")]
    assert numerics_rerun.profile_setting("full", PINNED_PARAMS) == []
    with pytest.raises(SystemExit, match="--profile 'smoke': params.yaml has no profiles.smoke"):
        numerics_rerun.profile_setting("smoke", {"profile": "full"})
    settings = numerics_rerun.outside_paths_absolute(
        {"fetch": {"local_archive": "../shared/a.tar.gz"}, "embed": {"unlabeled_archive": None}})
    assert settings == [(["fetch", "local_archive"],
                         str((numerics_rerun.ROOT / "../shared/a.tar.gz").resolve()))]
    # A clone beside the repository finds ../shared as written: left alone.
    beside = numerics_rerun.ROOT.parent / "numerics-HEAD-default"
    assert numerics_rerun.outside_paths_absolute(
        {"fetch": {"local_archive": "../shared/a.tar.gz"}}, beside) == []
    assert numerics_rerun.outside_paths_absolute(
        {"fetch": {"local_archive": "../shared/a.tar.gz"}}, Path("/elsewhere/deep/clone")) != []


def test_bad_arguments_are_refused_before_anything_is_cloned(tmp_path: Path):
    workdir = tmp_path / "clone"
    with pytest.raises(SystemExit):  # argparse: not a choice
        numerics_rerun.main(["--out", str(tmp_path / "o"), "--profile", "tiny"])
    with pytest.raises(SystemExit, match="--set 'tune.n_trials': expected KEY=VALUE"):
        numerics_rerun.main(["--out", str(tmp_path / "o"), "--workdir", str(workdir),
                             "--set", "tune.n_trials"])
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    with pytest.raises(SystemExit, match="--out .*full: exists and is not an empty folder"):
        numerics_rerun.main(["--out", str(tmp_path / "full"), "--workdir", str(workdir)])
    with pytest.raises(SystemExit, match="--rev 'no-such-rev' is not a commit"):
        numerics_rerun.main(["--out", str(tmp_path / "o"), "--workdir", str(workdir),
                             "--rev", "no-such-rev"])
    assert not workdir.exists()


def test_the_word_vectors_measurement_reads_its_settings_and_names_a_bad_one():
    import word_vectors_numerics

    assert word_vectors_numerics.parse_setting("default") == {}
    assert word_vectors_numerics.parse_setting(
        "OPENBLAS_CORETYPE=Prescott NPY_DISABLE_CPU_FEATURES=X86_V4,AVX512_ICL") == {
        "OPENBLAS_CORETYPE": "Prescott", "NPY_DISABLE_CPU_FEATURES": "X86_V4,AVX512_ICL"}
    with pytest.raises(SystemExit, match=r"--setting 'Prescott': 'Prescott' is not NAME=VALUE"):
        word_vectors_numerics.parse_setting("Prescott")
