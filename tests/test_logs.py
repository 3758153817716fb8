"""Job logs: a job's log starts with its start-up time (issue 19), and a failing job's log file ends
with the error and its traceback (issue 16, item 3)."""

from __future__ import annotations

import subprocess
import sys


def test_an_uncaught_error_ends_the_log_file_with_its_traceback(tmp_path):
    log = tmp_path / "logs" / "job.log"
    script = (
        "import sys, logging\n"
        "from gear.logs import setup_logging\n"
        "setup_logging(sys.argv[1])\n"
        "logging.getLogger('gear.data').info('reading the input')\n"
        "def read():\n"
        "    raise ValueError('input.jsonl:3: malformed JSON')\n"
        "read()\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(log)], capture_output=True, text=True)
    assert done.returncode == 1
    text = log.read_text()
    first, second = text.splitlines()[:2]
    assert "start-up (interpreter, preamble, imports): " in first  # for gear.tools.bench workflow
    assert "reading the input" in second
    assert "the job failed: ValueError: input.jsonl:3: malformed JSON" in text
    assert "Traceback (most recent call last)" in text and "in read" in text
    assert text.rstrip().endswith("ValueError: input.jsonl:3: malformed JSON")
    assert done.stderr.count("Traceback") == 1  # on stderr too, once
