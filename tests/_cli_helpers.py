"""Running the `biqa` command line in-process, and the one-line error contract, for CLI tests."""

from __future__ import annotations

import socket

import pytest

from biqa_bench.cli import main


def biqa(capsys, *args) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``biqa ARGS``."""
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line_error(code: int, err: str, *needles: str, exit_code: int = 2) -> str:
    """The error contract: exit code 2, no traceback, exactly one non-blank line on stderr holding
    every needle; returns that line."""
    assert code == exit_code, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture
def no_network(monkeypatch):
    """Every attempt to open a connection is recorded (the list this fixture gives) and refused."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network access attempted in an offline test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return attempts
