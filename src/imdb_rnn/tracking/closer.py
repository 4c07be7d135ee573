"""End FAILED a run that its process could not end because the tracking store stopped answering.

Started detached by :func:`imdb_rnn.tracking.runs.hand_off`::

    MLFLOW_TRACKING_URI=URI python -m imdb_rnn.tracking.closer RUN_ID OWNER_TAGS_JSON SECONDS

(the URI, which may hold a password, in the environment: a command line is public).

It waits for the owner process to exit, then tries the store every few seconds until it answers
or SECONDS have passed. A run that is no longer RUNNING, or that another process has taken
over, is left as it is.
"""

from __future__ import annotations

import json
import os
import sys
import time

from imdb_rnn.process import Owner


def close_when_answering(uri: str, run_id: str, owner: Owner, seconds: float,
                         pause: float = 0.5) -> bool:
    """True once the run is ended FAILED; False if it was not ours to end, or time ran out."""
    from mlflow.tracking import MlflowClient

    from imdb_rnn.tracking.runs import environment, fail_if_owned

    reason = f"the tracking store stopped answering process {owner}; ended by process {os.getpid()}"
    deadline = time.monotonic() + seconds
    delay = pause
    # One quick try per attempt, not MLflow's minutes of retries.
    with environment(MLFLOW_HTTP_REQUEST_MAX_RETRIES="0", MLFLOW_HTTP_REQUEST_TIMEOUT="5"):
        while time.monotonic() < deadline:
            if not owner.is_dead():
                time.sleep(pause)
                continue
            try:
                return fail_if_owned(MlflowClient(tracking_uri=uri), run_id, owner, reason)
            except Exception:  # the store is still away (refused, timed out, 5xx)
                time.sleep(delay)
                delay = min(delay * 2, 10.0)
    return False


def main(argv: list[str]) -> int:
    run_id, owner_json, seconds = argv
    uri = os.environ["MLFLOW_TRACKING_URI"]
    owner = Owner.from_tags(json.loads(owner_json))
    if owner is None:
        return 2
    return 0 if close_when_answering(uri, run_id, owner, float(seconds)) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
