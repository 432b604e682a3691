"""No token reaches any output: messages, log lines, exception text, written files, even a server's echo."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest_hub import WRITE_TOKEN, client_env, image_bytes, write_card, write_parquet_config
from hub_server import HubServer

from diverseg_hf.cli import main
from diverseg_hf.errors import DiversegError, ParameterError, redact, redacted_logging
from diverseg_hf.hub import push as hub_module
from diverseg_hf.hub.push import push_folder

pytest_plugins = ["conftest_hub"]  # the hub / hub_env fixtures

REPO = "tester/secret"
#: Tokens the token pattern of ``redact`` does not recognise: only knowing them redacts them.
ENV_TOKEN = "hf_env_token_without_digits"
STORED_TOKEN = "hf_stored_login_without_digits"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "ds"
    write_parquet_config(root, "A", image_bytes(1, 2))
    write_card(root, {"A": "data/A/*.parquet"})
    return root


@pytest.fixture
def echo_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A local Hub whose commit endpoint always fails with a 500 whose body echoes the Authorization header."""
    import huggingface_hub.constants

    server = HubServer({WRITE_TOKEN: "write", ENV_TOKEN: "write", STORED_TOKEN: "write"}).start()
    for key, value in client_env(server.url, tmp_path / "hf_home", None).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "hf_home" / "token"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "hf_home" / "stored"))
    monkeypatch.setattr(hub_module, "RETRY_FIRST_WAIT", 0.01)
    server.fail("POST", r"/commit/main$", 500, times=1000, echo_auth=True)
    yield server
    server.stop()


def echoed_body(server: HubServer, token: str) -> str:
    """What the server answers a commit with this token: proves that the echo carries the token."""
    request = urllib.request.Request(f"{server.url}/api/datasets/{REPO}/commit/main", data=b"{}", method="POST",
                                     headers={"Authorization": f"Bearer {token}"})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=30)
    return info.value.read().decode()


def store_login(token: str) -> None:
    import huggingface_hub.constants

    path = Path(huggingface_hub.constants.HF_TOKEN_PATH)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(token)


@pytest.mark.parametrize("where", ["env", "stored login", "token-shaped env"])
def test_echoed_token_is_redacted_from_the_cli_error(echo_hub, folder, monkeypatch, capsys, caplog, where) -> None:
    token = {"env": ENV_TOKEN, "stored login": STORED_TOKEN, "token-shaped env": WRITE_TOKEN}[where]
    if where == "stored login":
        store_login(token)
    else:
        monkeypatch.setenv("HF_TOKEN", token)
    assert token in echoed_body(echo_hub, token)
    caplog.set_level(logging.DEBUG)
    assert main(["push", str(folder), REPO]) == 2
    out, err = capsys.readouterr()
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "HTTP 500" in errors[0] and "Authorization: Bearer ***" in errors[0], err
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert token not in out + err + logged
    assert not any(token.encode() in p.read_bytes() for p in folder.rglob("*") if p.is_file())


@pytest.mark.slow
def test_library_error_and_logs_of_a_subprocess_carry_no_token(echo_hub, folder, tmp_path) -> None:
    env = client_env(echo_hub.url, tmp_path / "client_home", ENV_TOKEN)
    code = ("import diverseg_hf.hub.push as h; h.RETRY_FIRST_WAIT = 0.01\n"
            f"from diverseg_hf.cli import main; raise SystemExit(main(['-v', 'push', {str(folder)!r}, {REPO!r}]))")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 2, proc.stderr
    assert "retry" in proc.stderr and "Bearer ***" in proc.stderr
    assert ENV_TOKEN not in proc.stdout + proc.stderr


def test_exception_text_is_redacted(echo_hub, folder, monkeypatch) -> None:
    monkeypatch.setenv("HF_TOKEN", ENV_TOKEN)
    with pytest.raises(DiversegError) as info:
        push_folder(folder, REPO)
    assert ENV_TOKEN not in str(info.value) and info.value.__cause__ is None and info.value.__context__ is None


def test_log_records_are_redacted_while_pushing(monkeypatch) -> None:
    monkeypatch.setenv("HF_TOKEN", ENV_TOKEN)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    library = logging.getLogger("huggingface_hub")
    library.addHandler(handler)
    try:
        with redacted_logging("huggingface_hub"):
            logging.getLogger("huggingface_hub.utils._http").warning("body: %s", json.dumps({"auth": ENV_TOKEN}))
        logging.getLogger("huggingface_hub.utils._http").warning("after: %s", ENV_TOKEN)
    finally:
        library.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert lines[0] == 'body: {"auth": "***"}'
    assert lines[1] == f"after: {ENV_TOKEN}"  # the filter is gone once the push is over


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abc.def-123", "Authorization: Bearer ***"),
        ("token hf_AbCdEfGhIjKlMnOpQrStUvWxYz0123456 refused", "token *** refused"),
        ('{"token": "hf_test_write_token_5f2a9c"}', '{"token": "***"}'),
        ("see hf_hub_download and hf_raise_for_status", "see hf_hub_download and hf_raise_for_status"),
        ("HF_HUB_DISABLE_PROGRESS_BARS=1", "HF_HUB_DISABLE_PROGRESS_BARS=1"),
    ],
)
def test_redact_patterns(text: str, expected: str, monkeypatch) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    assert redact(text, known=()) == expected


def test_redact_known_tokens_and_secrets(monkeypatch) -> None:
    monkeypatch.setenv("HF_TOKEN", ENV_TOKEN)
    assert redact(f"a {ENV_TOKEN} b") == "a *** b"
    assert redact("x my-private-secret y", secrets=["my-private-secret", None, "short"]) == "x *** y"
    assert redact(f"{ENV_TOKEN}", known=()) == ENV_TOKEN  # not token-shaped, and not known here


def test_401_during_lfs_upload_is_one_line(hub_env, folder, capsys) -> None:
    hub_env.fail("PUT", r"/lfs-upload/", 401, echo_auth=True)
    assert main(["push", str(folder), REPO]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and errors[0].startswith("diverseg push: error:") and "(401)" in errors[0], err
    assert "Traceback" not in err and WRITE_TOKEN not in err
    assert "train-00000-of-00001.parquet" in errors[0]  # names the file whose upload failed


@pytest.mark.parametrize("repo_id", ["a//b", "a/b/c", "bad-/name", "org/a--b", "x" * 97, "white space/x"])
def test_malformed_repo_id_is_one_line_before_any_work(hub_env, folder, capsys, repo_id) -> None:
    with pytest.raises(SystemExit) as info:
        main(["push", str(folder), repo_id])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("diverseg push: error: argument REPO_ID: REPO_ID must be NAME or")
    assert "Traceback" not in err
    with pytest.raises(SystemExit):  # curate checks it before scoring anything
        main(["curate", str(folder), "--out", str(folder.parent / "out"), "--push-to-hub", repo_id])
    assert "argument --push-to-hub" in capsys.readouterr().err
    assert not (folder.parent / "out").exists()
    with pytest.raises(ParameterError, match="repo_id must be NAME or NAMESPACE/NAME"):
        push_folder(folder, repo_id)
    assert hub_env.log == []
