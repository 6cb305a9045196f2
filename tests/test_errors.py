"""first_line: what our messages quote of another library's exception."""

from executors.errors import first_line


def test_first_line_of_a_message_and_of_an_empty_one():
    assert first_line(RuntimeError("\n  CUDA out of memory.\nTried to allocate 2 GiB")) == "CUDA out of memory."
    assert first_line(ValueError("x" * 500), 200) == "x" * 200
    assert first_line(OSError()) == "OSError"  # was an IndexError where a message was quoted
    assert first_line(RuntimeError("   \n ")) == "RuntimeError"
