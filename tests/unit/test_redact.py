"""Secrets stay out of every artefact: the rule (records.redact) and where text is recorded."""

from __future__ import annotations

import json

import pytest
from test_gate_measure import map_bound, profile

from plumber.capture.scriptrun import ScriptOutcome
from plumber.capture.session import SessionOptions, assemble, instrumented
from plumber.gate.baseline import baseline_from_dict, save_baseline
from plumber.gate.machine import Calibration
from plumber.gate.runner import measurement
from plumber.measure.netsummary import merge_traces
from plumber.measure.nettrace import FORMAT, describe_failure
from plumber.records.redact import (
    MARK,
    looks_secret,
    redact_arguments,
    redact_message,
    redact_url,
    secret_values,
)


@pytest.mark.parametrize("name", [
    "token", "api-key", "api_key", "apiKey", "hf_token", "access-token", "password", "db-passwd",
    "pwd", "client_secret", "aws-secret-access-key", "credentials", "auth", "oauth",
    "X-Amz-Signature", "X-Amz-Credential", "X-Amz-Security-Token", "sig", "AWSAccessKeyId",
    "key", "wandb.api_key",
])
def test_names_that_hold_secrets(name):
    assert looks_secret(name)


@pytest.mark.parametrize("name", [
    "epochs", "max-tokens", "tokenizer", "author", "monkey", "keys", "batch-size", "data",
    "versionId", "X-Amz-Date", "X-Amz-Expires", "signal", "p",
])
def test_names_that_do_not(name):
    assert not looks_secret(name)


def test_secret_option_values_are_redacted_in_both_spellings_and_others_kept():
    args = ["train.py", "--token=tok-1234", "--api-key", "key-5678", "--epochs", "3",
            "--max-tokens", "512", "-p", "8080", "--password", "--verbose", "-token", "go-style"]
    assert redact_arguments(args) == (
        "train.py", f"--token={MARK}", "--api-key", MARK, "--epochs", "3",
        "--max-tokens", "512", "-p", "8080", "--password", "--verbose", "-token", MARK)


def test_assignments_as_hydra_overrides_are_redacted_by_their_last_name():
    assert redact_arguments(["wandb.api_key=abcd", "+db.password=x", "trainer.epochs=3"]) == (
        f"wandb.api_key={MARK}", f"+db.password={MARK}", "trainer.epochs=3")


def test_a_url_loses_its_userinfo_and_secret_parameters_but_keeps_what_names_the_data():
    url = ("https://bob:hunter2@bucket.s3.example.com:9000/data/x.tfrecord?versionId=7"
           "&X-Amz-Credential=AKIA123&X-Amz-Signature=abc123#access_token=frag")
    assert redact_url(url) == (
        f"https://{MARK}@bucket.s3.example.com:9000/data/x.tfrecord?versionId=7"
        f"&X-Amz-Credential={MARK}&X-Amz-Signature={MARK}#access_token={MARK}")
    assert redact_url("https://TOKEN123@github.com/o/r.git") == f"https://{MARK}@github.com/o/r.git"
    assert redact_url("s3://bucket/prefix/") == "s3://bucket/prefix/"


def test_urls_inside_any_argument_are_redacted():
    (shown,) = redact_arguments(["--data-url=https://u:pw@host/x?sig=s1&n=2"])
    assert shown == f"--data-url=https://{MARK}@host/x?sig={MARK}&n=2"


def test_the_hidden_values_are_known_for_free_text_except_very_short_ones():
    args = ["--token=tok-1234", "--key", "abc", "https://u:pw12@h/x?sig=sig-999"]
    assert set(secret_values(args)) == {"tok-1234", "u:pw12", "sig-999"}


def test_a_message_loses_known_values_userinfo_and_every_query_string():
    message = ("HTTPError 401 for url: https://u:pw@api.example.com/v1?page=2&token=t0k3n; "
               "Max retries exceeded with url: /bucket/key?X-Amz-Signature=zz (refused); "
               "token tok-1234 rejected. Is the server up? yes")
    assert redact_message(message, ["tok-1234"]) == (
        f"HTTPError 401 for url: https://{MARK}@api.example.com/v1?...; "
        f"Max retries exceeded with url: /bucket/key?... (refused); "
        f"token {MARK} rejected. Is the server up? yes")


def test_a_failed_request_is_described_without_its_credentials():
    class Refused(Exception):
        pass

    text = describe_failure(Refused("cannot reach https://me:pw@host:9/b/k?X-Amz-Signature=S"))
    assert text == f"Refused: cannot reach https://{MARK}@host:9/b/k?..."


def test_a_failure_read_back_from_a_workers_trace_is_redacted_again():
    row = [100.0, None, 1.0, None, "s3:9000", "GET", 0,
           "Error: /b/k?X-Amz-Signature=S3CR3T failed", None]
    network = merge_traces([{"format": FORMAT, "pid": 2, "requests": [row], "overflow": None,
                             "replay": None}])
    assert network.first_failure == "Error: /b/k?... failed"


@pytest.fixture
def assembled(tmp_path):
    """Build a profile of an empty run with ``command`` and ``error`` as a script would leave."""
    def build(command, error, keep_secrets=False):
        options = SessionOptions(cpu_probe_s=0, net_probe_s=0, keep_secrets=keep_secrets,
                                 capacity_cache_dir=str(tmp_path), sample_interval_s=0.05)
        with instrumented(options) as capture:
            capture.notes.append(f"a note quoting {error}")
        return assemble(capture, command, ScriptOutcome(1, error=error), options)
    return build


def test_the_profile_records_the_command_error_and_notes_redacted(assembled):
    profile = assembled(("train.py", "--token", "tok-1234", "--epochs", "2"),
                        "ValueError: token tok-1234 refused by https://u:pw@h/x?sig=1")
    assert profile.run.command == ("train.py", "--token", MARK, "--epochs", "2")
    assert profile.run.error == f"ValueError: token {MARK} refused by https://{MARK}@h/x?..."
    assert "tok-1234" not in json.dumps(profile.to_dict())
    assert "pw@" not in json.dumps(profile.to_dict())


def test_keep_secrets_records_them_as_given(assembled):
    profile = assembled(("train.py", "--token", "tok-1234"), "ValueError: tok-1234")
    kept = assembled(("train.py", "--token", "tok-1234"), "ValueError: tok-1234",
                     keep_secrets=True)
    assert "tok-1234" not in json.dumps(profile.to_dict())
    assert kept.run.command == ("train.py", "--token", "tok-1234")
    assert kept.run.error == "ValueError: tok-1234"


def test_the_gate_baseline_records_the_command_redacted(tmp_path):
    measured = measurement([profile(map_bound())], Calibration.from_samples([100.0]),
                           ("/ci/train.py", "--api-key=k-123456", "--steps", "200"))
    assert measured.command == ("train.py", f"--api-key={MARK}", "--steps", "200")
    path = save_baseline(measured, tmp_path / "baseline.json")
    assert "k-123456" not in path.read_text()


def test_a_baseline_recorded_before_redaction_is_read_redacted(tmp_path):
    measured = measurement([profile(map_bound())], Calibration.from_samples([100.0]),
                           ("train.py",))
    data = {**measured.to_dict(), "command": ["train.py", "--token=old-secret"]}
    assert baseline_from_dict(data).command == ("train.py", f"--token={MARK}")


@pytest.mark.parametrize("hostile", ["x" * 200_000, "a." * 100_000, "?a=" + "." * 200_000,
                                     "https://" + "u:" * 100_000 + "@h/"])
def test_a_huge_argument_or_message_is_redacted_in_one_pass(hostile):
    # A pattern that rescanned the rest of a long word from each letter would not finish.
    assert len(redact_message(hostile)) <= len(hostile) + 4
    (shown,) = redact_arguments([hostile])
    assert len(shown) <= len(hostile) + 4
