"""Fail the RUNNING trials of a stage whose study storage failed before it could fail them.

Started detached by :func:`imdb_rnn.search.study.hand_off_trials`::

    IMDB_TUNE_STORAGE=URL python -m imdb_rnn.search.closer STUDY OWNER_TAGS_JSON SECONDS

(the URL, which may hold a password, in the environment: a command line is public). It waits
for the owner process to exit, then tries the storage every few seconds until it answers or
SECONDS have passed, and fails (and queues again) the study's RUNNING trials whose worker on
this machine is gone, as the next worker on the study would (``recover_dead_trials``).
"""

from __future__ import annotations

import json
import os
import sys
import time

from imdb_rnn.process import Owner


def recover_when_answering(url: str, study_name: str, owner: Owner, seconds: float,
                           pause: float = 0.5) -> list[int] | None:
    """The numbers of the trials failed once the storage answers; None if time ran out."""
    import optuna

    from imdb_rnn.search.study import open_storage, recover_dead_trials

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    deadline = time.monotonic() + seconds
    delay = pause
    while time.monotonic() < deadline:
        if not owner.is_dead():
            time.sleep(pause)
            continue
        try:
            storage = open_storage(url)
            study = optuna.load_study(study_name=study_name, storage=storage)
            return recover_dead_trials(study, storage)
        except Exception:  # noqa: BLE001  (the storage is still away)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
    return None


def main(argv: list[str]) -> int:
    study_name, owner_json, seconds = argv
    owner = Owner.from_tags(json.loads(owner_json))
    if owner is None:
        return 2
    url = os.environ["IMDB_TUNE_STORAGE"]
    return 0 if recover_when_answering(url, study_name, owner, float(seconds)) is not None else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
